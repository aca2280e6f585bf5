// Read-only properties set, a literal of the wrong primitive type, and properties on an `existing` resource.
resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-fixture'
  location: 'westeurope'
  properties: {
    defaultHostName: 'func-fixture.azurewebsites.net' // expect: properties.defaultHostName: read-only property of SiteProperties
    httpsOnly: 'true' // expect: properties.httpsOnly: expected bool, got string 'true'
    siteConfig: {
      numberOfWorkers: '2' // expect: properties.siteConfig.numberOfWorkers: expected int, got string '2'
    }
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'stfixture'
  location: 'westeurope' // expect: location: cannot be set on an `existing` resource
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-fixture'
  location: 'westeurope'
  id: '/subscriptions/x' // expect: id: read-only property of Microsoft.ManagedIdentity/userAssignedIdentities
}
