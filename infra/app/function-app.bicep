// The Flex Consumption plan and the function app (Python 3.11), running as the user-assigned identity, with
// exactly the app settings the code reads (shared/settings.py SETTING_NAMES) plus the host's own.
param name string
param planName string
param location string
param tags object
@description('The azd service this app hosts (azure.yaml).')
param serviceName string = 'deleter'
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param serviceBusNamespace string
param deletionQueueName string
param deadLetterQueueName string
@description('Batch account names, the first being the default account.')
param batchAccountNames array
@description('Their endpoints (https://...), in the same order.')
param batchEndpoints array
param retryDelays string
param invocationDeadline string
param verifyDeletionAfter string
param verifyDeletionTimeout string
param successSampler string
param successSamplerArg string
param batchApiVersion string = '2025-06-01'
param maximumInstanceCount int
param instanceMemoryMB int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No publishing with user names and passwords: azd deploys with an Entra token.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    // The app's (contract section 2).
    BATCH_ENDPOINT: batchEndpoints[0]
    BATCH_ACCOUNTS: string(toObject(range(0, length(batchAccountNames)), i => batchAccountNames[i], i => batchEndpoints[i]))
    DELETION_QUEUE: deletionQueueName
    DEAD_LETTER_QUEUE: deadLetterQueueName
    ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
    ServiceBusConnection__credential: 'managedidentity'
    ServiceBusConnection__clientId: identityClientId
    AZURE_CLIENT_ID: identityClientId
    BATCH_API_VERSION: batchApiVersion
    RETRY_DELAYS: retryDelays
    INVOCATION_DEADLINE: invocationDeadline
    VERIFY_DELETION_AFTER: verifyDeletionAfter
    VERIFY_DELETION_TIMEOUT: verifyDeletionTimeout
    // Which successes' spans and records the app exports (shared/telemetry.py); failures always. The host
    // reads the same two for its own telemetry, sampled by trace (azure-functions-host PR 11568).
    OTEL_TRACES_SAMPLER: successSampler
    OTEL_TRACES_SAMPLER_ARG: successSamplerArg
    // The host's: its storage and its telemetry, both by identity. The Application Insights connection
    // string holds no secret (an ingestion address and the component's id); with local auth off,
    // telemetry is accepted only with the identity's Entra token.
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Read by the host and by the app: the app exports its spans, per-message records and metrics there
    // itself (shared/telemetry.py), with the same identity's token (a credential given to the exporter).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
    // host.json has "telemetryMode": "OpenTelemetry"; this tells the Python worker to attach the host's
    // trace context to each invocation ("Use OpenTelemetry with Azure Functions", Python). Not
    // PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: with it the worker calls configure_azure_monitor()
    // without a credential, which Application Insights with local auth off refuses.
    PYTHON_ENABLE_OPENTELEMETRY: 'true'
  }
}

output name string = functionApp.name
