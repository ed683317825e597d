// Everything the function needs, created by `azd up` (see docs/deployment.md, "Deploy to Azure").
// Plain Bicep on purpose: no registry modules (every role assignment is visible here), no resource loops,
// one `key: value` per line, so tests/test_infra.py can check settings, queues and roles by reading the text.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names the resource group and makes resource names unique.')
param environmentName string

@minLength(1)
@description('Region of every new resource (one where the Flex Consumption plan is offered).')
@metadata({ azd: { type: 'location' } })
param location string

@minLength(1)
@description('Existing Batch accounts whose jobs the function may delete: resource ids, comma-separated. The first is the default account (BATCH_ENDPOINT); all of them are listed in BATCH_ACCOUNTS under their account names.')
param batchAccountIds string

@description('Resource group to create (default rg-<environmentName>).')
param resourceGroupName string = ''

@description('The trigger queue (DELETION_QUEUE).')
param deletionQueueName string = 'batch-job-deletions'

@description('The queue that receives failure records and forwarded dead letters (DEAD_LETTER_QUEUE).')
param deadLetterQueueName string = 'batch-job-deletions-failed'

@description('Delayed-retry schedule in seconds, comma-separated (RETRY_DELAYS).')
param retryDelays string = '60,300,900,3600,14400'

@description('Seconds one invocation may take (INVOCATION_DEADLINE): at most half of host.json functionTimeout (5 min), since the host restarts the whole worker on that timeout.')
param invocationDeadline string = '120'

@description('Seconds after a deletion to check that the job is gone (VERIFY_DELETION_AFTER); 0 turns the check off. Each check is one Batch GET and one scheduled message.')
param verifyDeletionAfter string = '300'

@description('Seconds after a deletion after which a job still not gone is reported DeletionStuck (VERIFY_DELETION_TIMEOUT).')
param verifyDeletionTimeout string = '3600'

@description('Which successful invocations export their spans and record to Application Insights (OTEL_TRACES_SAMPLER): microsoft.rate_limited (about successesPerSecond per instance), microsoft.fixed_percentage, or always_on. Failures are always exported; the outcome counter counts every message.')
@allowed(['microsoft.rate_limited', 'microsoft.fixed_percentage', 'always_on'])
param successSampler string = 'microsoft.rate_limited'

@description('OTEL_TRACES_SAMPLER_ARG: successes exported per second per instance (microsoft.rate_limited) or their ratio, 0 to 1 (microsoft.fixed_percentage).')
param successSamplerArg string = '5'

@description('How long the failure queue remembers message ids (ISO 8601, at most P7D). Must exceed the longest RETRY_DELAYS step, so that one request never leaves two records.')
param failureQueueDuplicateWindow string = 'P1D'

@description('How long the deletion queue remembers message ids (ISO 8601): a resent request or retry copy within it is dropped. Longer than the queue lock (a message that comes back sends its copy again), short enough that a producer may reuse an id later.')
param deletionQueueDuplicateWindow string = 'PT10M'

@minValue(1)
@maxValue(1000)
@description('Most instances the app scales out to: with host.json maxConcurrentCalls 64, the most deletions in flight is 64 times this.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance in MB.')
param instanceMemoryMB int = 2048

@description('Optional: object id of a user or group that operates the queues (enqueue, read and replay failure records). Empty = nobody besides the function.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Optional: an e-mail address that receives the alerts (an action group). Empty = alerts show in the portal only.')
param alertEmail string = ''

@description('Active messages on the deletion queue, averaged over 15 minutes, that raise the backlog alert.')
param deletionBacklogThreshold int = 1000

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var batchAccountIdList = filter(map(split(batchAccountIds, ','), id => trim(id)), id => !empty(id))
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-deleter-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    hostPrincipalId: identity.outputs.principalId
  }
}

module serviceBus 'app/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    namespaceName: 'sb-deleter-${resourceToken}'
    location: location
    tags: tags
    deletionQueueName: deletionQueueName
    deadLetterQueueName: deadLetterQueueName
    failureQueueDuplicateWindow: failureQueueDuplicateWindow
    deletionQueueDuplicateWindow: deletionQueueDuplicateWindow
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

// One deployment into each Batch account's own resource group (and subscription): the role assignment
// lives on the account, and the account's endpoint is read from it. Deployment names are per resource group:
// the token keeps two environments granting on one Batch account from overwriting each other's deployment.
module batchAccess 'app/batch-access.bicep' = [for (id, i) in batchAccountIdList: {
  name: 'batch-access-${resourceToken}-${i}'
  scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
  params: {
    accountName: last(split(id, '/'))
    principalId: identity.outputs.principalId
  }
}]

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: 'func-deleter-${resourceToken}'
    planName: 'plan-deleter-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    deletionQueueName: serviceBus.outputs.deletionQueueName
    deadLetterQueueName: serviceBus.outputs.deadLetterQueueName
    batchAccountNames: [for id in batchAccountIdList: last(split(id, '/'))]
    batchEndpoints: [for i in range(0, length(batchAccountIdList)): batchAccess[i].outputs.endpoint]
    retryDelays: retryDelays
    invocationDeadline: invocationDeadline
    verifyDeletionAfter: verifyDeletionAfter
    verifyDeletionTimeout: verifyDeletionTimeout
    successSampler: successSampler
    successSamplerArg: successSamplerArg
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

// Alerts (failure queue, deletion backlog, deletions given up) and the operators' workbook.
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    deletionQueueName: serviceBus.outputs.deletionQueueName
    deadLetterQueueName: serviceBus.outputs.deadLetterQueueName
    alertEmail: alertEmail
    deletionBacklogThreshold: deletionBacklogThreshold
  }
}

// azd keeps these in the environment (`azd env get-values`); the last three are the operator tool's settings.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output ServiceBusConnection__fullyQualifiedNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output DELETION_QUEUE string = serviceBus.outputs.deletionQueueName
output DEAD_LETTER_QUEUE string = serviceBus.outputs.deadLetterQueueName
