// What an operator is told, and what they look at (docs/operating-in-azure.md says what each alert means and
// what to do). Alerts: records on the failure queue, a backlog on the deletion queue (Service Bus metrics on
// those entities), RetriesExhausted / DeletionStuck outcomes (a log query on the records the app exports
// through OpenTelemetry, shared/telemetry.py). A workbook: outcomes over time, Batch latency percentiles,
// failure reasons, the top failing jobs. An action group only when an e-mail address is given.
// API versions from the Azure resource reference (learn.microsoft.com/azure/templates): metricAlerts
// 2018-03-01, scheduledQueryRules 2021-08-01, actionGroups 2023-01-01, workbooks 2023-06-01.
param location string
param tags object
param applicationInsightsName string
param serviceBusNamespaceName string
param deletionQueueName string
param deadLetterQueueName string
@description('Optional: an e-mail address that receives the alerts. Empty = alerts fire in the portal only.')
param alertEmail string = ''
@description('Active messages on the deletion queue, on average over 15 minutes, that count as a backlog.')
param deletionBacklogThreshold int = 1000

var withEmail = !empty(alertEmail)
// The per-message record's fields are custom dimensions of `traces` (the exporter's log records); the
// host forwards the same text without them, so every query keys on customDimensions.outcome. A failure's
// record is always exported; a success's only as OTEL_TRACES_SAMPLER keeps it (shared/telemetry.py), so
// counts of all outcomes come from the deletion.outcomes counter, which counts every message, and
// latency percentiles weigh each Batch request by its itemCount (100 / its sample rate).
var records = 'traces | where isnotempty(customDimensions.outcome) | extend outcome = tostring(customDimensions.outcome), jobId = tostring(customDimensions.jobId), account = tostring(customDimensions.account)'
var failureReasons = '"PreconditionFailed", "BatchRejected", "InvalidMessage", "RetriesExhausted", "DeletionStuck", "Abandoned"'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource serviceBusNamespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (withEmail) {
  name: 'ag-batch-job-deleter'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'jobdeleter'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var metricActions = withEmail ? [{ actionGroupId: actionGroup.id }] : []

// A failure record (or a forwarded dead letter) waits on the failure queue: someone must look at it.
resource failureQueueAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'failure-queue-holds-records'
  location: 'global'
  tags: tags
  properties: {
    description: 'The failure queue (${deadLetterQueueName}) holds records: a deletion failed for good. See docs/operating-in-azure.md.'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'records'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'ActiveMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                deadLetterQueueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: metricActions
  }
}

// Requests arrive faster than they are processed, or the function is not running (no trigger indexed).
resource deletionBacklogAlert 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'deletion-queue-backlog'
  location: 'global'
  tags: tags
  properties: {
    description: 'The deletion queue (${deletionQueueName}) holds more than ${deletionBacklogThreshold} active messages on average over 15 minutes. See docs/operating-in-azure.md.'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespace.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'backlog'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'ActiveMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                deletionQueueName
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: deletionBacklogThreshold
          timeAggregation: 'Average'
        }
      ]
    }
    actions: metricActions
  }
}

// Deletions that gave up (RetriesExhausted) or jobs that never went away (DeletionStuck), by outcome.
resource givenUpAlert 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: 'deletions-given-up'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Batch job deletions given up (RetriesExhausted, DeletionStuck)'
    description: 'A deletion exhausted its retries, or a deleted job is still there after VERIFY_DELETION_TIMEOUT. See docs/operating-in-azure.md.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '${records} | where outcome in ("RetriesExhausted", "DeletionStuck")'
          timeAggregation: 'Count'
          dimensions: [
            {
              name: 'outcome'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: withEmail ? [actionGroup.id] : []
    }
  }
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      content: {
        json: '## Batch job deleter\nOne record per message (contract section 3, step 5). docs/operating-in-azure.md has the queries and what each alert means.'
      }
    }
    {
      type: 3
      name: 'outcomes-over-time'
      content: {
        version: 'KqlItem/1.0'
        title: 'Outcomes over time'
        query: 'customMetrics | where name == "deletion.outcomes" | summarize messages = sum(valueSum) by outcome = tostring(customDimensions.outcome), bin(timestamp, 1h) | render timechart'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'batch-latency'
      content: {
        version: 'KqlItem/1.0'
        title: 'Batch request latency (ms): 50th, 95th, 99th percentile'
        query: 'dependencies | where isnotempty(customDimensions["batch.client_request_id"]) | summarize percentilesw(duration, itemCount, 50, 95, 99) by bin(timestamp, 15m) | render timechart'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
    }
    {
      type: 3
      name: 'failure-reasons'
      content: {
        version: 'KqlItem/1.0'
        title: 'Failure reasons'
        query: '${records} | where outcome in (${failureReasons}) | summarize count() by outcome, batchErrorCode = tostring(customDimensions.batchErrorCode) | order by count_ desc'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
    {
      type: 3
      name: 'top-failing-jobs'
      content: {
        version: 'KqlItem/1.0'
        title: 'Top failing jobs'
        query: '${records} | where outcome in (${failureReasons}) | summarize failures = count(), reasons = make_set(outcome), last = max(timestamp) by jobId, account | top 20 by failures'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
    }
  ]
  fallbackResourceIds: [
    applicationInsights.id
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'batch-job-deleter-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Batch job deleter'
    category: 'workbook'
    sourceId: applicationInsights.id
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id
