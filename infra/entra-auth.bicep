// The API app registration that App Service authentication (authsettingsV2 in
// modules/function-app.bicep) validates callers' tokens against, its service
// principal, and optionally an app role assignment for one caller (a Logic
// App's managed identity). Deployed from main.bicep when enableEntraAuth is true
// (see docs/deploy.md, Entra-authenticated callers).
//
// The deploying user needs to be able to create app registrations (allowed to
// every user unless the tenant restricts it; otherwise Application Developer),
// and, for the caller assignment, to assign app roles of this API, e.g. Cloud
// Application Administrator. No Microsoft Graph app role is granted here.
extension microsoftGraphV1

@description('Unique name (alternate key) of the API app registration, also the last segment of its identifier URI.')
param uniqueName string

@description('Display name of the API app registration.')
param displayName string

@description('Catalogs that get an app role of their own, Reprocess.Catalog.<name>: [{ name: string, catalogId: string }].')
param catalogRoles array = []

@description('Principal (object) ID of a caller\'s managed identity (e.g. a Logic App) that is granted callerAppRole. Empty: no assignment.')
param callerPrincipalId string = ''

@description('Value of the app role granted to callerPrincipalId: Reprocess.All or Reprocess.Catalog.<name>.')
param callerAppRole string = 'Reprocess.All'

// api://<tenant id>/<string>: a supported App ID URI format that names the tenant.
var identifierUri = 'api://${tenant().tenantId}/${uniqueName}'

// The roles: one for the whole deployment scope, one per listed catalog.
var roles = concat(
  [
    {
      value: 'Reprocess.All'
      displayName: 'Reprocess: whole deployment scope'
      description: 'Reprocess access package assignments anywhere this deployment may (ALLOWED_CATALOG_IDS / ALLOWED_ACCESS_PACKAGE_IDS).'
    }
  ],
  map(catalogRoles, catalog => {
    value: 'Reprocess.Catalog.${catalog.name}'
    displayName: 'Reprocess: catalog ${catalog.name}'
    description: 'Reprocess access package assignments of catalog ${catalog.catalogId} only.'
  })
)

// The handler's CALLER_SCOPES app setting: the scope each role grants; {} is the
// whole deployment scope (ALLOWED_CATALOG_IDS / ALLOWED_ACCESS_PACKAGE_IDS).
var callerScopes = union(
  { 'Reprocess.All': {} },
  toObject(catalogRoles, catalog => 'Reprocess.Catalog.${catalog.name}', catalog => { catalogIds: [catalog.catalogId] })
)

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  api: {
    // v2 access tokens: issuer login.microsoftonline.com/<tenant>/v2.0, audience the client ID.
    requestedAccessTokenVersion: 2
  }
  // Role ids are derived from the registration's unique name and the role value, so
  // they stay the same across deployments and can be computed for the assignment.
  appRoles: [
    for role in roles: {
      allowedMemberTypes: ['Application']
      id: guid(uniqueName, role.value)
      value: role.value
      displayName: role.displayName
      description: role.description
      isEnabled: true
    }
  ]
}

resource apiServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: api.appId
  // Only principals holding one of the app roles get a token for this API.
  appRoleAssignmentRequired: true
}

resource callerAssignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = if (!empty(callerPrincipalId)) {
  principalId: callerPrincipalId
  resourceId: apiServicePrincipal.id
  appRoleId: guid(uniqueName, callerAppRole)
}

output appId string = api.appId
output identifierUri string = identifierUri
output servicePrincipalId string = apiServicePrincipal.id
@description('JSON for the CALLER_SCOPES app setting.')
output callerScopes string = string(callerScopes)
