// The namespace (Standard: duplicate detection needs it; local auth off, so no SAS key or connection string
// works), the deletion queue and the failure queue, and who may do what on each queue.
param namespaceName string
param location string
param tags object
param deletionQueueName string
param deadLetterQueueName string
@description('ISO 8601 duration: longer than the longest delayed retry, at most P7D.')
param failureQueueDuplicateWindow string
@description('ISO 8601 duration: longer than the deletion queue lock.')
param deletionQueueDuplicateWindow string
@description('The function identity.')
param appPrincipalId string
@description('Optional operator (user or group object id); empty = none.')
param operatorPrincipalId string = ''
param operatorPrincipalType string = 'User'

var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0' // Azure Service Bus Data Receiver
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39' // Azure Service Bus Data Sender
var serviceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419' // Azure Service Bus Data Owner
var withOperator = !empty(operatorPrincipalId)

resource serviceBusNamespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

// Failure records (the function's) and forwarded dead letters (the broker's). Record ids are deterministic,
// so duplicate detection keeps one record per delivered message within the window.
resource failureQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBusNamespace
  name: deadLetterQueueName
  properties: {
    lockDuration: 'PT1M'
    // Generous: `dead-letters replay` abandons each record it passes over once per run.
    maxDeliveryCount: 100
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: failureQueueDuplicateWindow
    deadLetteringOnMessageExpiration: true
  }
}

// The trigger queue. The function holds a message for at most INVOCATION_DEADLINE (2 min by default), and
// the host renews the lock (host.json maxAutoLockRenewalDuration); a message that keeps failing is
// dead-lettered after maxDeliveryCount deliveries and forwarded to the failure queue. Duplicate detection:
// a retry copy sent twice (a message that came back after its copy was sent, or a send cut off by the
// deadline after Service Bus took it) or a producer's resend is dropped; it can only be set when the queue
// is created.
resource deletionQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBusNamespace
  name: deletionQueueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: deletionQueueDuplicateWindow
    deadLetteringOnMessageExpiration: true
    forwardDeadLetteredMessagesTo: failureQueue.name
  }
}

// The function: receive deletions (the trigger), send delayed-retry copies to the same queue, send records.
resource appReceivesDeletions 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deletionQueue.id, appPrincipalId, serviceBusDataReceiver)
  scope: deletionQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSendsRetries 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deletionQueue.id, appPrincipalId, serviceBusDataSender)
  scope: deletionQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Manage rights on the deletion queue alone: the scale controller reads the queue's message count with the
// function's identity, and without Manage it "reverts to incremental scale" (learn.microsoft.com, "Target-based
// scaling", Service Bus; Azure/azure-sdk-for-net ServiceBusMetricsProvider.GetMessageCountAsync). Data Owner is
// the only built-in data role with Manage; the two roles above still say what the function itself does.
resource appScalesOnDeletions 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deletionQueue.id, appPrincipalId, serviceBusDataOwner)
  scope: deletionQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSendsFailures 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(failureQueue.id, appPrincipalId, serviceBusDataSender)
  scope: failureQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The operator (python -m delete_job.cli): enqueue and replay send to the deletion queue; reading,
// replaying and removing records receives from the failure queue. It never sends to the failure queue.
resource operatorSendsDeletions 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator) {
  name: guid(deletionQueue.id, operatorPrincipalId, serviceBusDataSender)
  scope: deletionQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorReadsFailures 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (withOperator) {
  name: guid(failureQueue.id, operatorPrincipalId, serviceBusDataReceiver)
  scope: failureQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

output namespaceName string = serviceBusNamespace.name
output fullyQualifiedNamespace string = '${serviceBusNamespace.name}.servicebus.windows.net'
output deletionQueueName string = deletionQueue.name
output deadLetterQueueName string = failureQueue.name
