// Values outside closed string-literal unions (no `string` member), nested and at depth.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stfixture'
  location: 'westeurope'
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Warm' // expect: properties.accessTier: 'Warm' is not an allowed value: expected one of 'Hot' | 'Cool' | 'Premium' | 'Cold'
    networkAcls: {
      defaultAction: 'Block' // expect: properties.networkAcls.defaultAction: 'Block' is not an allowed value
    }
  }
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  name: 'authsettingsV2'
  parent: app
  properties: {
    globalValidation: {
      unauthenticatedClientAction: 'Return402' // expect: 'Return402' is not an allowed value: expected one of 'RedirectToLoginPage' | 'AllowAnonymous' | 'Return401' | 'Return403'
    }
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: 'func-fixture'
}

resource config 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsetings' // expect: name: string 'appsetings' is not one of the values that select a microsoft.web/sites/config
  properties: {}
}
