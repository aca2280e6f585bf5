// A misspelled property nested inside functionAppConfig (Microsoft.Web/sites), and one two levels deeper.
param location string = 'westeurope'

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: 'func-fixture'
  location: location
  kind: 'functionapp,linux'
  properties: {
    functionAppConfig: {
      scaleAndConcurency: { // expect: properties.functionAppConfig.scaleAndConcurency: unknown property of FunctionAppConfig; did you mean 'scaleAndConcurrency'?
        instanceMemoryMB: 2048
      }
      runtime: {
        nmae: 'custom' // expect: properties.functionAppConfig.runtime.nmae: unknown property of FunctionsRuntime; did you mean 'name'?
        version: '1.0'
      }
    }
  }
}
