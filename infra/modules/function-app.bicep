// Flex Consumption (FC1) plan and the custom-handler Function App.
// Every app setting is declared here: the `appsettings` config resource
// replaces the whole set on each deployment, so settings added by hand are
// removed on the next `azd provision`.
param planName string
param appName string
param location string
param tags object = {}

@description('azd service name; azd finds the deploy target by this tag.')
param serviceName string = 'handler'

param identityId string
param identityClientId string

param storageAccountName string
param storageBlobEndpoint string
param storageQueueEndpoint string
param deploymentContainerName string
param queueName string

@description('Table holding the state of asynchronous operations.')
param operationsTableName string

param applicationInsightsConnectionString string

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Graph\'s budget is per app and tenant, so more instances only split it: the least Flex Consumption allows (see README, Several instances).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

param graphBaseUrl string = 'https://graph.microsoft.com'

@allowed(['v1.0', 'beta'])
param graphApiVersion string = 'v1.0'

@description('Extra app settings (e.g. GRAPH_MAX_CONCURRENCY); the settings below take precedence over them.')
param additionalAppSettings object = {}

@description('Schedule of function-heal-timer (NCRONTAB with seconds), the HEAL_SCHEDULE app setting.')
param healSchedule string = '0 0 * * * *'

@description('Turns drift detection on (DRIFT_DETECTION_ENABLED); only with the read app roles granted (graph-permission.bicep enableDriftDetection).')
param enableDriftDetection bool = false

@description('Comma-separated access package IDs the heal timer checks for drift (DRIFT_PACKAGE_IDS).')
param driftPackageIds string = ''

@description('Zone-redundant Flex Consumption plan (supported regions only; pair with ZRS storage).')
param zoneRedundant bool = false

@description('Allow basic (publishing profile) auth on SCM/FTP. Off: deploy with Entra tokens (azd, az CLI).')
param allowBasicPublishingCredentials bool = false

@description('App Service authentication (Entra ID) in front of the HTTP functions: callers need a token for the API app registration (entra-auth.bicep).')
param enableEntraAuth bool = false

@description('Client (application) ID of the API app registration; with enableEntraAuth.')
param authClientId string = ''

@description('App ID URI of the API app registration (api://...); accepted as a token audience with the client ID.')
param authIdentifierUri string = ''

@description('CALLER_SCOPES app setting: JSON object from app role value to the scope it grants; with enableEntraAuth.')
param callerScopes string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy is a parameter (zoneRedundant, off by default): Flex supports it only in some regions and it needs ZRS storage
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222:Callers are Logic Apps and Azure Monitor action groups on public endpoints; HTTP functions require a function key (authLevel function) and, with enableEntraAuth, an Entra token
  //checkov:skip=CKV_AZURE_17:Callers authenticate with function keys or Entra ID (Easy Auth), not client certificates
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero per demand; instance count is not a site setting (see maximumInstanceCount)
  //checkov:skip=CKV_AZURE_213:The custom handler exposes no anonymous health route (HTTP functions need a key); Flex instances are platform-managed and App Insights tracks failures
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }

  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(additionalAppSettings, {
      // Host storage, identity-based (the account has shared keys disabled).
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // Connection "ReprocessQueue" named in the function.json queue bindings.
      ReprocessQueue__queueServiceUri: storageQueueEndpoint
      ReprocessQueue__credential: 'managedidentity'
      ReprocessQueue__clientId: identityClientId
      REPROCESS_QUEUE_NAME: queueName
      // Application Insights with Entra auth (local auth is disabled).
      APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // Read by the reprocess-handler binary.
      AZURE_CLIENT_ID: identityClientId
      CREDENTIAL_SOURCE: 'managed_identity'
      GRAPH_BASE_URL: graphBaseUrl
      GRAPH_API_VERSION: graphApiVersion
      // Operation state, in the host's own storage account (AzureWebJobsStorage__* above).
      OPERATIONS_TABLE_NAME: operationsTableName
      // function-heal-timer's schedule ("%HEAL_SCHEDULE%" in its function.json) and drift detection.
      HEAL_SCHEDULE: healSchedule
      DRIFT_DETECTION_ENABLED: enableDriftDetection ? 'true' : 'false'
      DRIFT_PACKAGE_IDS: driftPackageIds
      // Caller authentication (authsettingsV2 below); the platform sets WEBSITE_AUTH_ENABLED itself.
      REQUIRE_AUTHENTICATED_CALLER: enableEntraAuth ? 'true' : 'false'
    }, enableEntraAuth ? { CALLER_SCOPES: callerScopes } : {})
  }

  // App Service authentication. Always declared, so that turning enableEntraAuth
  // off turns the platform check off too (a removed resource would be left as is).
  // Function keys stay required as well (authLevel function in function-*/function.json).
  resource authSettings 'config' = {
    name: 'authsettingsV2'
    properties: {
      platform: {
        enabled: enableEntraAuth
      }
      globalValidation: {
        requireAuthentication: true
        unauthenticatedClientAction: 'Return401'
      }
      httpSettings: {
        requireHttps: true
      }
      identityProviders: {
        azureActiveDirectory: {
          enabled: enableEntraAuth
          registration: {
            clientId: authClientId
            openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
          }
          validation: {
            allowedAudiences: enableEntraAuth ? [authIdentifierUri, authClientId] : []
          }
        }
      }
      login: {
        tokenStore: {
          enabled: false
        }
      }
    }
  }

  resource ftpPublishing 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: {
      allow: false
    }
  }

  resource scmPublishing 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: {
      allow: allowBasicPublishingCredentials
    }
  }
}

output id string = app.id
output name string = app.name
output defaultHostName string = app.properties.defaultHostName
