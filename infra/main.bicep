// reprocess-handler: Azure Functions custom handler (Rust) on Flex Consumption.
// Deploy with `azd up` (see docs/deploy.md) or
//   az deployment sub create -l <region> -f infra/main.bicep -p environmentName=<name> location=<region>
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used for the resource group name and the unique resource token.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse. Default: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Function App name override. Default: func-<token>.')
param functionAppName string = ''

@description('Queue the HTTP function enqueues to and the queue function processes. Its dead-letter queue is <name>-poison.')
param reprocessQueueName string = 'reprocess-requests'

@description('Table that holds the state of asynchronous operations (GET /api/operations/{id}).')
param operationsTableName string = 'reprocessoperations'

@allowed(['v1.0', 'beta'])
param graphApiVersion string = 'v1.0'

param graphBaseUrl string = 'https://graph.microsoft.com'

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Graph\'s budget is per app and tenant, so more instances only split it: the least Flex Consumption allows (see README, Several instances).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Extra app settings for the handler\'s tuning knobs (GRAPH_MAX_CONCURRENCY, QUEUE_BUDGET_SECONDS, ...). Identity, storage and Graph settings always come from the template.')
param additionalAppSettings object = {}

@description('Zone-redundant Flex Consumption plan; only in regions that support it, and pair with a ZRS storage SKU.')
param zoneRedundant bool = false

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param storageSkuName string = 'Standard_LRS'

@description('Optional principal (the azd user by default) that gets Storage Queue Data Message Sender and Reader to enqueue and inspect messages. Empty: none.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'

@description('Also grant the Microsoft Graph app role to the identity (graph-permission.bicep). Needs Privileged Role Administrator; otherwise leave false and have an admin deploy graph-permission.bicep.')
param grantGraphAppRole bool = false

@description('How the identity may reprocess. appRole: the tenant-wide Graph app role EntitlementManagement.ReadWrite.All (graph-permission.bicep, when grantGraphAppRole). catalogRoles (recommended): the catalog-scoped entitlement-management role "Access package assignment manager" on each of allowedCatalogIds, granted by scripts/grant-catalog-roles.sh (Bicep cannot declare entitlement-management role assignments); no app role is granted.')
@allowed(['appRole', 'catalogRoles'])
param graphAccess string = 'appRole'

@description('Comma-separated catalog IDs this deployment may touch (ALLOWED_CATALOG_IDS). Empty: the whole tenant. Needed for graphAccess catalogRoles.')
param allowedCatalogIds string = ''

@description('Comma-separated access package IDs this deployment may touch (ALLOWED_ACCESS_PACKAGE_IDS), in addition to the catalogs.')
param allowedAccessPackageIds string = ''

@description('Table of the durable audit records (AUDIT_TABLE_NAME).')
param auditTableName string = 'reprocessaudit'
@description('Drift detection: grants the extra read app roles GroupMember.Read.All and Application.Read.All (with grantGraphAppRole, or when an admin deploys graph-permission.bicep with enableDriftDetection=true) and sets DRIFT_DETECTION_ENABLED.')
param enableDriftDetection bool = false

@description('Schedule of the heal timer (NCRONTAB with seconds); hourly by default.')
param healSchedule string = '0 0 * * * *'

@description('Comma-separated access package IDs the heal timer checks for drift (needs enableDriftDetection).')
param driftPackageIds string = ''

@description('Allow basic (publishing profile) auth on the SCM site. Leave false unless a deployment tool needs it.')
param allowBasicPublishingCredentials bool = false

@description('Entra ID authentication in front of the HTTP functions (App Service authentication with an API app registration created through the Microsoft Graph Bicep extension, entra-auth.bicep). On by default; the deploying user must be able to create app registrations. See docs/deploy.md, Entra-authenticated callers.')
param enableEntraAuth bool = true

@description('Catalogs that get an app role of their own on the API, Reprocess.Catalog.<name>, limited to that catalog in CALLER_SCOPES: [{ name: string, catalogId: string }].')
param callerCatalogRoles array = []

@description('Principal (object) ID of a caller\'s managed identity (e.g. a Logic App) to grant callerAppRole on the API. Empty: none.')
param callerPrincipalId string = ''

@description('App role granted to callerPrincipalId: Reprocess.All, or Reprocess.Catalog.<name> of a callerCatalogRoles entry.')
param callerAppRole string = 'Reprocess.All'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'reprocess-handler'
}
// Catalog scope and audit settings, read by the handler at start-up.
var scopeSettings = union(
  empty(allowedCatalogIds) ? {} : { ALLOWED_CATALOG_IDS: allowedCatalogIds },
  empty(allowedAccessPackageIds) ? {} : { ALLOWED_ACCESS_PACKAGE_IDS: allowedAccessPackageIds },
  { AUDIT_TABLE_NAME: auditTableName }
)
var appName = !empty(functionAppName) ? functionAppName : 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    skuName: storageSkuName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueName: reprocessQueueName
    operationsTableName: operationsTableName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
  }
}

module entraAuth 'entra-auth.bicep' = if (enableEntraAuth) {
  name: 'entra-auth'
  scope: rg
  params: {
    uniqueName: 'reprocess-handler-${resourceToken}'
    displayName: 'reprocess-handler API (${environmentName})'
    catalogRoles: callerCatalogRoles
    callerPrincipalId: callerPrincipalId
    callerAppRole: callerAppRole
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  dependsOn: [
    rbac
  ]
  params: {
    planName: 'plan-${resourceToken}'
    appName: appName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    queueName: storage.outputs.queueName
    operationsTableName: storage.outputs.operationsTableName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    additionalAppSettings: union(additionalAppSettings, scopeSettings)
    graphBaseUrl: graphBaseUrl
    graphApiVersion: graphApiVersion
    allowBasicPublishingCredentials: allowBasicPublishingCredentials
    healSchedule: healSchedule
    enableDriftDetection: enableDriftDetection
    driftPackageIds: driftPackageIds
    enableEntraAuth: enableEntraAuth
    authClientId: enableEntraAuth ? entraAuth.outputs.appId : ''
    authIdentifierUri: enableEntraAuth ? entraAuth.outputs.identifierUri : ''
    callerScopes: enableEntraAuth ? entraAuth.outputs.callerScopes : ''
  }
}

module auditTable 'modules/audit-table.bicep' = {
  name: 'audit-table'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    tableName: auditTableName
  }
}

module graphPermission 'graph-permission.bicep' = if (grantGraphAppRole && graphAccess == 'appRole') {
  name: 'graph-permission'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    enableDriftDetection: enableDriftDetection
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_HANDLER_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_MANAGED_IDENTITY_NAME string = identity.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output REPROCESS_QUEUE_NAME string = storage.outputs.queueName
output REPROCESS_POISON_QUEUE_NAME string = storage.outputs.poisonQueueName
output OPERATIONS_TABLE_NAME string = storage.outputs.operationsTableName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AUDIT_TABLE_NAME string = auditTable.outputs.tableName
output GRAPH_ACCESS string = graphAccess
output ALLOWED_CATALOG_IDS string = allowedCatalogIds
output ENTRA_AUTH_ENABLED bool = enableEntraAuth
output ENTRA_API_APP_ID string = enableEntraAuth ? entraAuth.outputs.appId : ''
output ENTRA_API_IDENTIFIER_URI string = enableEntraAuth ? entraAuth.outputs.identifierUri : ''
