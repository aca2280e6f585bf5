// The body of a property's for-loop is checked against the array's item type.
extension microsoftGraphV1

param roles array = ['Reprocess.All']

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: 'reprocess-handler-fixture'
  displayName: 'fixture'
  appRoles: [
    for role in roles: {
      allowedMemberTypes: ['Application']
      value: role
      isEnabled: 'yes' // expect: appRoles[0].isEnabled: expected bool, got string 'yes'
      displayname: role // expect: appRoles[0].displayname: property name differs in case from 'displayName'
    }
  ]
}
