// Accepted: extensible enums (a union with a `string` member) take any string, additionalProperties
// maps take any key, expressions are skipped, nested and `parent:` children resolve, loops and
// conditions are looked into, `existing` resources only name the resource.
extension microsoftGraphV1

param location string = 'westeurope'
param names array = ['a', 'b']

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stfixture'
  location: location
  kind: 'SomeFutureKind'
  sku: {
    name: 'Premium_SomeFutureSku'
  }
  tags: {
    'any-key': 'any value'
    another: 'value'
  }
  properties: {
    minimumTlsVersion: 'TLS1_3'
  }

  resource queues 'queueServices' = {
    name: 'default'

    resource q 'queues' = [for n in names: {
      name: n
    }]
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: 'func-fixture'
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(location)) {
  parent: app
  name: 'appsettings'
  properties: {
    ANY_SETTING_NAME: 'value'
    '${location}_SETTING': 'value'
  }
}

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: 'reprocess-handler-fixture'
  displayName: 'fixture'
  nativeAuthenticationApisEnabled: 'someFutureValue'
  appRoles: [
    {
      allowedMemberTypes: ['Application']
      id: guid('fixture', 'Reprocess.All')
      value: 'Reprocess.All'
      displayName: 'Reprocess everything'
      description: 'Reprocess everything'
      isEnabled: true
    }
  ]
}

resource graphSp 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '00000003-0000-0000-c000-000000000000'
}
