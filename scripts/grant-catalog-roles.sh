#!/usr/bin/env bash
# Grants the Function App's managed identity the entitlement-management role "Access package assignment
# manager" on each given catalog, instead of the tenant-wide Graph app role
# EntitlementManagement.ReadWrite.All (infra/main.bicep graphAccess=catalogRoles; see docs/deploy.md).
#
# Graph: POST /v1.0/roleManagement/entitlementManagement/roleAssignments with principalId,
# roleDefinitionId and appScopeId "/AccessPackageCatalog/<catalog id>" (microsoft-graph-docs-contrib
# api-reference/v1.0/api/rbacapplication-post-roleassignments.md); role definition
# e2182095-804a-4656-ae11-64734e9b7ae5 (MicrosoftDocs/entra-docs
# docs/id-governance/entitlement-management-delegate.md, which also says catalog roles can be given to
# service principals). Existing assignments are left alone, so the script can be re-run.
#
# Run it signed in (`az login`) as an Identity Governance Administrator, or as a catalog owner of each
# catalog. Usage:
#   scripts/grant-catalog-roles.sh <identity principal (object) id> <catalog id> [<catalog id> ...]
# e.g. scripts/grant-catalog-roles.sh "$(azd env get-value AZURE_MANAGED_IDENTITY_PRINCIPAL_ID)" \
#        $(azd env get-value ALLOWED_CATALOG_IDS | tr ',' ' ')
set -euo pipefail

ROLE=e2182095-804a-4656-ae11-64734e9b7ae5 # Access package assignment manager
GRAPH=${GRAPH_BASE_URL:-https://graph.microsoft.com}
GUID='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

if [ "$#" -lt 2 ]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
principal=$1
shift
for id in "$principal" "$@"; do
  [[ $id =~ $GUID ]] || { echo "not a GUID: $id" >&2; exit 2; }
done

url="$GRAPH/v1.0/roleManagement/entitlementManagement/roleAssignments"
for catalog in "$@"; do
  scope="/AccessPackageCatalog/$catalog"
  held=$(az rest --method GET \
    --url "$url?\$filter=principalId%20eq%20%27$principal%27" \
    --query "length(value[?roleDefinitionId=='$ROLE' && appScopeId=='$scope'])" --output tsv)
  if [ "$held" != "0" ]; then
    echo "catalog $catalog: the identity already holds Access package assignment manager"
    continue
  fi
  az rest --method POST --url "$url" --headers Content-Type=application/json \
    --body "{\"principalId\":\"$principal\",\"roleDefinitionId\":\"$ROLE\",\"appScopeId\":\"$scope\"}" \
    --query id --output tsv >/dev/null
  echo "catalog $catalog: granted Access package assignment manager"
done
