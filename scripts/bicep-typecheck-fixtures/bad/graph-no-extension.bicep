// A Graph resource in a file that does not declare the extension.
resource sp 'Microsoft.Graph/servicePrincipals@v1.0' existing = { // expect: the file needs an `extension` declaration
  appId: '00000003-0000-0000-c000-000000000000'
}
