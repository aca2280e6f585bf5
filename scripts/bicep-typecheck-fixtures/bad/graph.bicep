// The same kinds of mistakes in Microsoft Graph extension resources.
extension microsoftGraphV1

resource api 'Microsoft.Graph/applications@v1.0' = { // expect: missing required property 'uniqueName' (Microsoft.Graph/applications)
  displayName: 'reprocess-handler fixture'
  appId: '00000000-0000-0000-0000-000000000000' // expect: appId: read-only property of Microsoft.Graph/applications
  appRoles: [
    {
      allowedMemberType: ['Application'] // expect: appRoles[0].allowedMemberType: unknown property of MicrosoftGraphAppRole; did you mean 'allowedMemberTypes'?
      isEnabled: 'yes' // expect: appRoles[0].isEnabled: expected bool, got string 'yes'
      value: 'Reprocess.All'
    }
  ]
  api: {
    requestedAccessTokenVersion: '2' // expect: api.requestedAccessTokenVersion: expected int, got string '2'
  }
}

resource sp 'Microsoft.Graph/servicePrincipals@beta' = { // expect: API version 'beta' does not exist for Microsoft.Graph/servicePrincipals in extension microsoftGraphV1
  appId: '00000000-0000-0000-0000-000000000000'
}

resource assignment 'Microsoft.Graph/appRoleAssignedTo@v1.0' = { // expect: missing required property 'resourceId'
  principalId: '00000000-0000-0000-0000-000000000000'
  appRoleId: 'Reprocess.All' // expect: appRoleId: string 'Reprocess.All' is shorter than the minimum length 36
}

resource user 'Microsoft.Graph/users@v1.0' = { // expect: this resource type is read-only
  userPrincipalName: 'someone@example.com'
}
