// The one user-assigned managed identity used by the Function App for
// everything: host storage, the reprocess queue, deployment package
// container, Application Insights ingestion and Microsoft Graph.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
