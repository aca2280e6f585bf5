// Missing required properties: at the top of a resource body, in a nested object, and in an array item.
resource roleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid('fixture')
  properties: { // expect: properties: missing required property 'principalId' (RoleAssignmentProperties)
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = { // expect: missing required property 'location'
  name: 'id-fixture'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = { // expect: missing required property 'sku'
  name: 'stfixture'
  location: 'westeurope'
  kind: 'StorageV2'
  properties: {
    networkAcls: {
      defaultAction: 'Deny'
      ipRules: [
        { action: 'Allow' } // expect: properties.networkAcls.ipRules[0]: missing required property 'value' (IPRule)
      ]
    }
  }
}
