#!/usr/bin/env bash
# Deploys the packaged custom handler to an existing Function App without
# `azd deploy` (manual path, and CI). Packages first unless --zip is given.
#
# Usage: scripts/deploy.sh [--app NAME] [--resource-group RG] [--zip PATH]
#                          [--binary PATH] [--func]
#   --app / --resource-group  target; default from `azd env get-value`
#                             (SERVICE_HANDLER_NAME, AZURE_RESOURCE_GROUP) or
#                             the env vars AZURE_FUNCTION_APP_NAME / AZURE_RESOURCE_GROUP
#   --zip PATH     deploy this package instead of running scripts/package.sh
#   --binary PATH  passed to scripts/package.sh (stage an already-built binary)
#   --func         publish the staged folder with Azure Functions Core Tools
#                  (`func azure functionapp publish <app> --custom`) instead of
#                  `az functionapp deployment source config-zip`
set -euo pipefail

die() {
  echo "deploy.sh: error: $*" >&2
  exit 1
}

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "${script_dir}/.." && pwd)"
app="${AZURE_FUNCTION_APP_NAME:-}"
rg="${AZURE_RESOURCE_GROUP:-}"
zip_path=""
binary=""
use_func=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --app) [[ $# -ge 2 ]] || die "--app needs a name"; app="$2"; shift 2 ;;
    --resource-group) [[ $# -ge 2 ]] || die "--resource-group needs a name"; rg="$2"; shift 2 ;;
    --zip) [[ $# -ge 2 ]] || die "--zip needs a path"; zip_path="$2"; shift 2 ;;
    --binary) [[ $# -ge 2 ]] || die "--binary needs a path"; binary="$2"; shift 2 ;;
    --func) use_func=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

azd_value() {
  command -v azd >/dev/null 2>&1 || return 0
  azd env get-value "$1" 2>/dev/null || true
}

[[ -n "${app}" ]] || app="$(azd_value SERVICE_HANDLER_NAME)"
[[ -n "${rg}" ]] || rg="$(azd_value AZURE_RESOURCE_GROUP)"
[[ -n "${app}" ]] || die "no Function App name: pass --app or run from an azd environment"

out="${root}/dist"
if [[ -z "${zip_path}" ]]; then
  package_args=(--out "${out}")
  [[ -n "${binary}" ]] && package_args+=(--binary "${binary}")
  zip_path="$(bash "${script_dir}/package.sh" "${package_args[@]}")"
fi
[[ -f "${zip_path}" ]] || die "package not found: ${zip_path}"

if [[ "${use_func}" == true ]]; then
  command -v func >/dev/null 2>&1 || die "Azure Functions Core Tools (func) not found"
  stage="$(dirname -- "${zip_path}")/package"
  [[ -d "${stage}" ]] || die "staged folder not found: ${stage} (run scripts/package.sh)"
  (cd -- "${stage}" && func azure functionapp publish "${app}" --custom)
else
  command -v az >/dev/null 2>&1 || die "Azure CLI (az) not found"
  [[ -n "${rg}" ]] || die "no resource group: pass --resource-group or run from an azd environment"
  az functionapp deployment source config-zip \
    --resource-group "${rg}" --name "${app}" --src "${zip_path}"
fi
echo "deploy.sh: deployed ${zip_path} to ${app}"
