// The host's storage (AzureWebJobsStorage: leases, keys) and the Flex Consumption deployment container,
// reached only by identity: shared keys are off, so no connection string can work.
param name string
param location string
param tags object
param deploymentContainerName string
@description('The principal the Functions host runs as (the function identity).')
param hostPrincipalId string

// Microsoft's table of host storage roles ("Connecting to host storage with an identity"; MicrosoftDocs/azure-docs
// includes/functions-azurewebjobsstorage-permissions.md): Blob Data Owner for the host itself (coordination, key
// store; also the Flex deployment package), plus Table Data Contributor "with support for diagnostic events",
// which the host persists in AzureWebJobsStorage tables. The Service Bus trigger adds nothing. No Queue role: only
// blob and queue triggers, Durable Functions and MCP triggers need one (as Microsoft's Flex quickstart,
// Azure-Samples/functions-quickstart-python-http-azd, grants it: enableQueue), and this app has none of them.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hostPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource hostTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hostPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: hostPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = storage.name
