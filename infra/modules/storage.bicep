// Storage account for the Functions host (AzureWebJobsStorage), the Flex
// Consumption deployment package container and the reprocess queues.
// Shared keys are disabled: every caller authenticates with Entra ID.
param name string
param location string
param tags object = {}

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Queue the HTTP function writes to and the queue function reads from.')
param queueName string

@description('Table holding the state of asynchronous operations (the handler writes it through the Table REST API with the managed identity).')
param operationsTableName string

@description('Replication. LRS keeps cost down; use ZRS/GZRS where the region supports it for zone resilience.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_RAGZRS'])
param skuName string = 'Standard_LRS'

@description('Log Analytics workspace that receives the storage resource logs.')
param logAnalyticsId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // Flex Consumption without VNet integration reaches its host storage, deployment
  // container and queues over the public endpoint; callers still need Entra ID
  // (shared keys off, TLS 1.2, HTTPS only). Private endpoints are out of scope here.
  //checkov:skip=CKV_AZURE_35:Public endpoint needed by the non-VNet Flex Consumption app; access is Entra-only (allowSharedKeyAccess false)
  //checkov:skip=CKV_AZURE_59:Public endpoint needed by the non-VNet Flex Consumption app; anonymous blob access and shared keys are disabled
  //checkov:skip=CKV_AZURE_206:Replication is a parameter (storageSkuName, LRS by default for cost); data is transient queue messages and a rebuildable package
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }

  resource blobServices 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: true
        days: 7
      }
      containerDeleteRetentionPolicy: {
        enabled: true
        days: 7
      }
    }

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: {
        publicAccess: 'None'
      }
    }
  }

  resource queueServices 'queueServices' = {
    name: 'default'

    resource reprocessQueue 'queues' = {
      name: queueName
    }

    // The Functions queue trigger moves a message here after maxDequeueCount
    // failed attempts (host.json extensions.queues). It would create the queue
    // itself; creating it here lets operators and alerts find it from day one.
    resource poisonQueue 'queues' = {
      name: '${queueName}-poison'
    }
  }

  // Operation state: one partition per operation, written by the handler (README: Asynchronous
  // operations). The handler would create the table itself; creating it here needs no create rights.
  resource tableServices 'tableServices' = {
    name: 'default'

    resource operationsTable 'tables' = {
      name: operationsTableName
    }
  }
}

// Storage resource logs (read/write/delete) for the blob and queue services.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-blob-logs'
  scope: storage::blobServices
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-queue-logs'
  scope: storage::queueServices
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output queueName string = storage::queueServices::reprocessQueue.name
output poisonQueueName string = storage::queueServices::poisonQueue.name
output operationsTableName string = storage::tableServices::operationsTable.name

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'storage-table-logs'
  scope: storage::tableServices
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}
