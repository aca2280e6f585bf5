#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document: builds the debug binary, starts the sandbox (the
# real handler behind the emulated Functions host, against the emulated tenant; Azurite from
# tools/azurite when installed, so the operations endpoint is live), and runs schemathesis against the
# document the sandbox serves at /api/openapi: every operation, examples, boundary/coverage, fuzzing
# (valid and invalid data) and stateful phases, with the conformance checks below. Exits non-zero on any
# failure; the sandbox is stopped on every exit.
#
# Environment: FUZZ_MAX_EXAMPLES (default 100) bounds the cases per operation and phase; FUZZ_SEED
# fixes the random seed (default: a fixed one, so CI runs are reproducible); FUZZ_REPORT_DIR keeps
# schemathesis' JUnit and NDJSON reports (default: a temporary directory, printed); FUZZ_CHECKS
# replaces the list of checks (e.g. `all` to explore); FUZZ_WORKERS sets schemathesis' workers.
#
# Checks: the handler's answers must conform to the document (status, headers, body schema, content
# type) and never be a 5xx. Not gated here: positive_data_acceptance (OpenAPI 2.0 cannot say "at least
# one ID", so `{}` is schema-valid and refused), negative_data_rejection on /alert (a webhook payload
# that is not an alert is answered 200 "nothing to do" on purpose, so Azure Monitor does not retry
# it), ignored_auth and unsupported_method (the sandbox's emulated front end checks no function key and
# answers 404 to unrouted methods, where the real host's front end answers).
#
# One worker: with several, Hypothesis' lambda descriptions race in CPython 3.11's ast.parse
# ("AST constructor recursion depth mismatch") and schemathesis reports an internal error.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.ci/.venv-schemathesis
# Verified with this version: its option names and check names are used below.
schemathesis_version=4.32.5
max_examples="${FUZZ_MAX_EXAMPLES:-100}"
seed="${FUZZ_SEED:-7}"

if [[ ! -x "${venv}/bin/schemathesis" ]] || ! "${venv}/bin/schemathesis" --version 2>/dev/null | grep -q "${schemathesis_version}"; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check --retries 5 "schemathesis==${schemathesis_version}"
fi

cargo build --locked
bin="${CARGO_TARGET_DIR:-target}/debug/reprocess-handler"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
port="$(free_port)"
handler_port="$(free_port)"
while [[ "${handler_port}" == "${port}" ]]; do handler_port="$(free_port)"; done

log="$(mktemp)"
report_dir="$(realpath "${FUZZ_REPORT_DIR:-$(mktemp -d)}")"
sandbox_pid=""
stop_sandbox() {
  if [[ -n "${sandbox_pid}" ]] && kill -0 "${sandbox_pid}" 2>/dev/null; then
    kill -TERM "${sandbox_pid}" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "${sandbox_pid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${sandbox_pid}" 2>/dev/null || true
    wait "${sandbox_pid}" 2>/dev/null || true
  fi
  rm -f -- "${log}"
}
trap stop_sandbox EXIT

echo "== sandbox on 127.0.0.1:${port} (handler on ${handler_port})"
"${bin}" sandbox --port "${port}" --handler-port "${handler_port}" >"${log}" 2>&1 &
sandbox_pid=$!

base="http://127.0.0.1:${port}"
ready=""
for _ in $(seq 600); do
  if ! kill -0 "${sandbox_pid}" 2>/dev/null; then
    echo "the sandbox exited before it served the document:" >&2
    cat "${log}" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null "${base}/api/openapi" 2>/dev/null && grep -q "serving until" "${log}"; then
    ready=1
    break
  fi
  sleep 0.2
done
if [[ -z "${ready}" ]]; then
  echo "the sandbox did not serve ${base}/api/openapi within 120 s:" >&2
  cat "${log}" >&2
  exit 1
fi
grep -m1 "^sandbox: " "${log}" || true

# The served document, saved: loaded from its URL, schemathesis leaves out the operation that serves
# it (GET /openapi); loaded from the file, every operation is tested.
served="${report_dir}/served-openapi.json"
curl -fsS -o "${served}" "${base}/api/openapi"

echo "== schemathesis ${schemathesis_version}: ${base}/api/openapi, ${max_examples} examples per operation and phase, seed ${seed}"
status=0
# Run from the report directory: schemathesis keeps a cache in ./.schemathesis.
venv_bin="$(realpath "${venv}/bin")"
(cd "${report_dir}" && "${venv_bin}/schemathesis" run "${served}" \
  --url "${base}/api" \
  --phases examples,coverage,fuzzing,stateful \
  --mode all \
  --checks "${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}" \
  --max-examples "${max_examples}" \
  --seed "${seed}" \
  --workers "${FUZZ_WORKERS:-1}" \
  --request-timeout 60 \
  --header "x-functions-key: sandbox-key" \
  --generation-with-security-parameters false \
  --suppress-health-check too_slow,filter_too_much,data_too_large \
  --generation-database none \
  --report junit,ndjson \
  --report-dir "${report_dir}" \
  --no-color) || status=$?
echo "schemathesis reports: ${report_dir}"
if [[ "${status}" -ne 0 ]]; then
  echo "schemathesis found failures (exit ${status}); the sandbox's log:" >&2
  tail -n 200 "${log}" >&2
fi
exit "${status}"
