// Grants a Microsoft Graph application permission (app role) to the
// reprocess-handler's user-assigned managed identity.
//
// Deployed on its own by a tenant admin (see docs/deploy.md), or from
// main.bicep when `grantGraphAppRole` is true and the deploying user holds the
// needed Entra role. Whoever deploys it needs:
//   * Privileged Role Administrator (or Global Administrator) in Entra ID:
//     app roles of Microsoft Graph and other Microsoft first-party APIs cannot
//     be granted by Application / Cloud Application Administrators;
//   * permission to create a deployment at the scope used, e.g.
//     Microsoft.Resources/deployments/write on any resource group.
//
// Example:
//   az deployment group create -g <rg> -f infra/graph-permission.bicep \
//     -p principalId=<managed identity principal (object) id>
// With enableDriftDetection=true it also grants the read roles drift detection needs
// (least privilege per the Graph permission tables: GroupMember.Read.All for group
// members/owners, Application.Read.All for servicePrincipals/{id}/appRoleAssignedTo).
extension microsoftGraphV1

@description('Object (principal) id of the managed identity service principal that receives the app role.')
param principalId string

@description('Value of the Microsoft Graph application permission to grant.')
param appRoleValue string = 'EntitlementManagement.ReadWrite.All'

@description('Also grant GroupMember.Read.All and Application.Read.All, which drift detection needs. Off by default: least privilege.')
param enableDriftDetection bool = false

var driftReadRoles = enableDriftDetection ? ['GroupMember.Read.All', 'Application.Read.All'] : []

// Microsoft Graph's well-known application (client) id; the same in every tenant.
var microsoftGraphAppId = '00000003-0000-0000-c000-000000000000'

resource microsoftGraph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: microsoftGraphAppId
}

// App role ids are stable, but look the role up by its value rather than
// hard-coding a GUID, and only accept roles meant for applications.
var matchingAppRoles = filter(
  microsoftGraph.appRoles,
  role => role.value == appRoleValue && contains(role.allowedMemberTypes, 'Application')
)

resource appRoleAssignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {
  principalId: principalId
  resourceId: microsoftGraph.id
  appRoleId: matchingAppRoles[0].id
}

resource driftReadAssignments 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for role in driftReadRoles: {
    principalId: principalId
    resourceId: microsoftGraph.id
    appRoleId: filter(
      microsoftGraph.appRoles,
      r => r.value == role && contains(r.allowedMemberTypes, 'Application')
    )[0].id
  }
]

output driftReadAppRoleIds array = [for (role, i) in driftReadRoles: driftReadAssignments[i].appRoleId]
output appRoleId string = appRoleAssignment.appRoleId
output graphServicePrincipalId string = microsoftGraph.id
