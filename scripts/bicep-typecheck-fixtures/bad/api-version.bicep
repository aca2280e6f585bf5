// An API version that does not exist, a resource type that does not exist, and an Azure type that
// exists but whose type data is not vendored.
resource plan 'Microsoft.Web/serverfarms@2024-13-01' = { // expect: API version '2024-13-01' does not exist for Microsoft.Web/serverfarms
  name: 'plan-fixture'
  location: 'westeurope'
}

resource site 'Microsoft.Web/site@2024-04-01' = { // expect: unknown resource type Microsoft.Web/site (did you mean Microsoft.Web/sites?)
  name: 'func-fixture'
  location: 'westeurope'
}

resource oldSite 'Microsoft.Web/sites@2023-12-01' = { // expect: Microsoft.Web/sites@2023-12-01 exists but is not vendored
  name: 'func-fixture'
  location: 'westeurope'
}
