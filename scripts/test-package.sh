#!/usr/bin/env bash
# Runs scripts/package.sh on an already-built binary and asserts the layout of
# the artifact the Functions host will run:
#   * host.json at the zip root,
#   * every function-* folder of the project, each with its function.json,
#   * the binary at the path host.json's defaultExecutablePath names, with its
#     exec bit set in the zip entry's external attributes, byte-identical to
#     the input,
#   * no local.settings.json.
# It packages once with each available archiver (Info-ZIP `zip`, and python3's
# zipfile, the fallback when `zip` is absent).
#
# Usage: scripts/test-package.sh BINARY [PROJECT_ROOT]
#   BINARY        e.g. target/x86_64-unknown-linux-musl/release/reprocess-handler
#   PROJECT_ROOT  directory with host.json and function-* (default: this repo)
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "${script_dir}/.." && pwd)"

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 BINARY [PROJECT_ROOT]" >&2
  exit 2
fi
binary="$1"
[[ -f "${binary}" ]] || { echo "test-package.sh: no such binary: ${binary}" >&2; exit 2; }
if [[ $# -eq 2 ]]; then
  root="$(cd -- "$2" && pwd)"
fi

work="$(mktemp -d)"
trap 'rm -rf -- "${work}"' EXIT

tools=(python)
if command -v zip >/dev/null 2>&1; then
  tools=(zip python)
fi

total_failed=0
total_passed=0
for tool in "${tools[@]}"; do
  out="${work}/${tool}"
  echo "== package.sh --binary ${binary} (archiver: ${tool})"
  if ! zip_path="$(PACKAGE_ZIP_TOOL="${tool}" bash "${script_dir}/package.sh" \
    --binary "${binary}" --root "${root}" --out "${out}")"; then
    echo "FAIL package.sh exited non-zero (archiver ${tool})"
    total_failed=$((total_failed + 1))
    continue
  fi

  set +e
  result="$(python3 - "${zip_path}" "${root}" "${binary}" <<'PY'
import hashlib, json, os, stat, sys, zipfile

zip_path, root, binary = sys.argv[1:4]
passed = failed = 0

def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")

with zipfile.ZipFile(zip_path) as zf:
    infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    names = set(infos)

    check("host.json" in names, "host.json is at the zip root")
    host = json.loads(zf.read("host.json").decode("utf-8-sig")) if "host.json" in names else {}
    with open(os.path.join(root, "host.json"), "rb") as f:
        check("host.json" in names and zf.read("host.json") == f.read(),
              "host.json is the project's host.json, unchanged")

    function_dirs = sorted(
        d for d in os.listdir(root)
        if d.startswith("function-") and os.path.isdir(os.path.join(root, d))
    )
    check(bool(function_dirs), f"project has function-* folders ({', '.join(function_dirs)})")
    for d in function_dirs:
        check(f"{d}/function.json" in names, f"{d}/function.json is in the zip")
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for name in files:
                if name in ("local.settings.json", "function.json"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                check(rel in names, f"{rel} is in the zip")

    exe = (host.get("customHandler", {}).get("description", {}).get("defaultExecutablePath"))
    check(isinstance(exe, str) and bool(exe), "host.json names customHandler.description.defaultExecutablePath")
    exe = os.path.normpath(exe or "").replace(os.sep, "/")
    check(exe in names, f"binary is staged at defaultExecutablePath ({exe})")
    if exe in names:
        info = infos[exe]
        mode = info.external_attr >> 16
        check(info.create_system == 3, f"{exe} entry records Unix attributes (create_system={info.create_system})")
        check(stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0, f"{exe} is a regular file (mode {oct(mode)})")
        check(mode & 0o111 == 0o111, f"{exe} has its exec bits set (mode {oct(stat.S_IMODE(mode))})")
        with open(binary, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        got = hashlib.sha256(zf.read(exe)).hexdigest()
        check(got == want, f"{exe} is byte-identical to the input binary")
        check(zf.read(exe)[:4] == b"\x7fELF", f"{exe} is an ELF executable")

    check(not any(n.endswith("local.settings.json") for n in names), "no local.settings.json is shipped")
    bad = [n for n in names if n.startswith("/") or ".." in n.split("/")]
    check(not bad, "no absolute or parent-relative entry names")
    check(zf.testzip() is None, "zip CRCs are valid")

print(f"RESULT {passed} {failed}")
PY
)"
  rc=$?
  set -e
  echo "${result}" | grep -v '^RESULT '
  read -r _ passed failed < <(echo "${result}" | grep '^RESULT ' || echo "RESULT 0 1")
  if [[ ${rc} -ne 0 && ${failed} -eq 0 ]]; then
    failed=1
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
done

echo "test-package: ${total_passed} passed, ${total_failed} failed"
[[ ${total_failed} -eq 0 ]]
