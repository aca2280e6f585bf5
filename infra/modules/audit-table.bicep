// The durable audit table: one entity per reprocess sent to Graph and per dry run, written by
// the handler through the Table REST API with the managed identity (src/audit/sink.rs). The identity's
// data role on the account's tables (Storage Table Data Contributor) is granted in modules/rbac.bicep
// with the operations table; this module only declares the table, so it exists before the first write.
param storageAccountName string

@description('Table name, as the handler\'s AUDIT_TABLE_NAME (3-63 letters and digits).')
@minLength(3)
@maxLength(63)
param tableName string = 'reprocessaudit'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

output tableName string = auditTable.name
