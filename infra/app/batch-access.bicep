// Deployed into an existing Batch account's resource group: lets the function identity delete jobs there
// (and nothing else: not pools, not keys), and reports the account's endpoint.
@description('Name of an existing Batch account in this resource group. It must allow Microsoft Entra ID authentication.')
param accountName string
param principalId string

var batchJobSubmitter = '48e5e92e-a480-4e71-aa9c-2778f4c13781' // Azure Batch Job Submitter

resource account 'Microsoft.Batch/batchAccounts@2024-07-01' existing = {
  name: accountName
}

resource jobSubmitter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, batchJobSubmitter)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', batchJobSubmitter)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${account.properties.accountEndpoint}'
