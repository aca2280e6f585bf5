#!/usr/bin/env bash
# Builds and stages the reprocess-handler Azure Functions custom-handler
# package, then zips it for zip deploy / `func azure functionapp publish`.
#
# Layout of the artifact (paths relative to the zip root):
#   host.json
#   function-*/function.json      (every function folder of the project)
#   <defaultExecutablePath>       (the Linux binary, mode 0755, at the exact
#                                  path host.json's customHandler names)
#
# Usage: scripts/package.sh [--binary PATH] [--out DIR] [--root DIR] [--target TRIPLE]
#   --binary PATH   stage this already-built binary instead of running cargo
#   --out DIR       output directory (default: <root>/dist); writes
#                   DIR/package/ (staged tree) and DIR/reprocess-handler.zip
#   --root DIR      project root holding host.json and function-* (default:
#                   the repository this script lives in)
#   --target TRIPLE cargo target (default: x86_64-unknown-linux-musl, a static
#                   binary that runs on the Flex Consumption Linux workers)
# The binary is built with --no-default-features: the package carries no
# emulator and no `sandbox` command. For a musl target, C code (aws-lc-sys) is
# compiled with musl-gcc (Debian's musl-tools) unless CC_<target> is set.
# Environment:
#   PACKAGE_ZIP_TOOL=zip|python  force the archiver (default: zip if installed,
#                                else python3's zipfile module)
set -euo pipefail

readonly BIN_NAME="reprocess-handler"
readonly ZIP_NAME="reprocess-handler.zip"

die() {
  echo "package.sh: error: $*" >&2
  exit 1
}

log() {
  echo "package.sh: $*" >&2
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "${script_dir}/.." && pwd)"
binary=""
out=""
target="x86_64-unknown-linux-musl"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary)
      [[ $# -ge 2 ]] || die "--binary needs a path"
      binary="$2"
      shift 2
      ;;
    --out)
      [[ $# -ge 2 ]] || die "--out needs a directory"
      out="$2"
      shift 2
      ;;
    --root)
      [[ $# -ge 2 ]] || die "--root needs a directory"
      root="$(cd -- "$2" && pwd)" || die "no such directory: $2"
      shift 2
      ;;
    --target)
      [[ $# -ge 2 ]] || die "--target needs a target triple"
      target="$2"
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      die "unknown argument: $1 (see --help)"
      ;;
  esac
done

command -v python3 >/dev/null 2>&1 || die "python3 is required (reads host.json, may write the zip)"

host_json="${root}/host.json"
[[ -f "${host_json}" ]] || die "no host.json in ${root}"

# The binary goes exactly where host.json says the Functions host will look.
exe_path="$(
  python3 - "${host_json}" <<'PY'
import json, posixpath, sys

with open(sys.argv[1], encoding="utf-8-sig") as f:
    host = json.load(f)
path = (
    host.get("customHandler", {})
    .get("description", {})
    .get("defaultExecutablePath")
)
if not isinstance(path, str) or not path.strip():
    sys.exit("host.json has no customHandler.description.defaultExecutablePath")
path = path.strip().replace("\\", "/")
norm = posixpath.normpath(path)
if path.startswith("/") or norm == ".." or norm.startswith("../"):
    sys.exit(f"defaultExecutablePath must be relative to the app root: {path!r}")
print(norm)
PY
)" || die "cannot read defaultExecutablePath from ${host_json}"

shopt -s nullglob
function_dirs=("${root}"/function-*/)
shopt -u nullglob
[[ ${#function_dirs[@]} -gt 0 ]] || die "no function-* folders in ${root}"
for dir in "${function_dirs[@]}"; do
  [[ -f "${dir}function.json" ]] || die "${dir} has no function.json"
done

if [[ -z "${binary}" ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust or pass --binary"
  cc_var="CC_${target//-/_}"
  if [[ "${target}" == *-linux-musl && -z "${!cc_var:-}" ]]; then
    command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc not found; install musl-tools or set ${cc_var}"
    export "${cc_var}=musl-gcc"
  fi
  log "cargo build --release --locked --no-default-features --target ${target} -p reprocess-handler"
  (cd -- "${root}" && cargo build --release --locked --no-default-features --target "${target}" -p reprocess-handler --bin "${BIN_NAME}")
  binary="${CARGO_TARGET_DIR:-${root}/target}/${target}/release/${BIN_NAME}"
fi
[[ -f "${binary}" ]] || die "binary not found: ${binary}"

# Warn (do not fail) when the binary is not a Linux x86-64 ELF: the Flex
# Consumption workers run linux-x64 and cannot start anything else.
elf_header="$(od -An -tx1 -N20 -- "${binary}" | tr -d ' \n')"
if [[ "${elf_header:0:8}" != "7f454c46" || "${elf_header:36:4}" != "3e00" ]]; then
  log "warning: ${binary} is not an x86-64 ELF executable; Azure will not be able to run it"
fi

out="${out:-${root}/dist}"
mkdir -p -- "${out}"
out="$(cd -- "${out}" && pwd)"
stage="${out}/package"
zip_path="${out}/${ZIP_NAME}"

case "${stage}/" in
  "${root}/") die "--out must not be the project root" ;;
esac

rm -rf -- "${stage}" "${zip_path}"
mkdir -p -- "${stage}"

cp -- "${host_json}" "${stage}/host.json"
for dir in "${function_dirs[@]}"; do
  name="$(basename -- "${dir}")"
  cp -R -- "${dir}" "${stage}/${name}"
done
# Never ship local settings (they may hold development secrets).
find "${stage}" -name local.settings.json -type f -delete

mkdir -p -- "${stage}/$(dirname -- "${exe_path}")"
cp -- "${binary}" "${stage}/${exe_path}"
chmod 0755 "${stage}/${exe_path}"

zip_tool="${PACKAGE_ZIP_TOOL:-}"
if [[ -z "${zip_tool}" ]]; then
  if command -v zip >/dev/null 2>&1; then zip_tool="zip"; else zip_tool="python"; fi
fi

case "${zip_tool}" in
  zip)
    # Info-ZIP stores Unix permissions (the exec bit) in the external attributes.
    (cd -- "${stage}" && zip -q -r -X "${zip_path}" .)
    ;;
  python)
    python3 - "${stage}" "${zip_path}" <<'PY'
import os, stat, sys, zipfile

stage, zip_path = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            arcname = os.path.relpath(full, stage).replace(os.sep, "/")
            mode = stat.S_IMODE(os.stat(full).st_mode)
            info = zipfile.ZipInfo.from_file(full, arcname)
            # Unix mode (incl. the exec bit) lives in the high 16 bits;
            # create_system 3 marks the entry as made on Unix so extractors honour it.
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(full, "rb") as src:
                zf.writestr(info, src.read())
PY
    ;;
  *)
    die "PACKAGE_ZIP_TOOL must be zip or python, not ${zip_tool}"
    ;;
esac

log "staged ${stage}"
log "wrote ${zip_path} (binary at ${exe_path}, archiver ${zip_tool})"
echo "${zip_path}"
