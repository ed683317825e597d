"""What the processor exports through OpenTelemetry (contract section 7), read back from in-memory exporters.

Against the real emulators, as tests/delete_job/test_processor.py: for each outcome the log record's
attributes (the record's fields: Application Insights' custom dimensions), the invocation span (continuing
the producer's trace when the message carries one), one dependency span per Batch request and the outcome
counter. The secrets canary watches every exported item (emulators/telemetry.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from delete_job.processor import Processor
from emulators.telemetry import Captured, capture
from shared.settings import Settings, load_settings
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle
from tests.delete_job.test_processor import received, records

pytestmark = pytest.mark.usefixtures("identity_env")

FIELDS = (
    "outcome",
    "jobId",
    "account",
    "httpStatus",
    "batchErrorCode",
    "requestId",
    "clientRequestId",
    "messageId",
    "deliveryCount",
    "retryAttempt",
    "attempts",
    "durationMs",
)


def telemetry_settings(batch: BatchHandle, servicebus: ServiceBusHandle, **extra: str) -> Settings:
    """The settings of a processor against the test's emulators, quick retries short (the telemetry
    tests' common ground; each adds what its outcomes need)."""
    return load_settings(
        {
            "BATCH_ENDPOINT": batch.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "ServiceBusConnection": servicebus.connection_string,
            "QUICK_RETRY_DELAYS": "0.01,0.01",
            **extra,
        }
    )


@pytest.fixture
def captured() -> Captured:
    return capture("telemetry test")


@pytest.fixture
async def processor(
    batch_emulator: BatchHandle,
    identity_env: IdentityHandle,
    servicebus: ServiceBusHandle,
    captured: Captured,
) -> AsyncIterator[Processor]:
    settings = telemetry_settings(
        batch_emulator,
        servicebus,
        BATCH_ACCOUNTS=json.dumps({"second": batch_emulator.url}),
        RETRY_DELAYS="60,300",
    )
    telemetry = captured.telemetry(accounts=list(settings.batch_accounts), queue=settings.deletion_queue)
    created = Processor.create(settings, telemetry=telemetry)
    yield created
    await created.close()


class Exported:
    """One invocation's telemetry: its span, its Batch spans, its record's attributes, the counter."""

    def __init__(self, captured: Captured) -> None:
        spans = captured.spans()
        (self.invocation,) = [s for s in spans if s.kind is SpanKind.CONSUMER]
        self.batch = [s for s in spans if s.kind is SpanKind.CLIENT]
        (log,) = captured.logs()
        self.record = log.log_record
        self.fields: dict[str, Any] = dict(self.record.attributes or {})
        self.metrics = captured.metrics()

    def outcomes(self) -> dict[tuple[str, str], float]:
        return {
            (labels["outcome"], labels["account"]): value
            for name, labels, value in self.metrics
            if name == "deletion.outcomes"
        }

    def latency_count(self) -> float:
        return sum(value for name, _, value in self.metrics if name == "batch.request.duration")


async def test_deleted_exports_the_record_the_spans_and_the_counter(
    processor: Processor, batch_emulator: BatchHandle, captured: Captured
) -> None:
    """202: the record's fields as log attributes, in the invocation's trace; one Batch span with
    Batch's request-id and our client-request-id; Deleted counted for the default account."""
    batch_emulator.control.add_job("nightly-42")
    message = received({"jobId": "nightly-42"})
    result = await processor.process(message)
    assert result.outcome == "Deleted"

    got = Exported(captured)
    # absent values (account, batchErrorCode) are left out: OpenTelemetry attributes cannot be null
    assert set(got.fields) == set(FIELDS) - {"account", "batchErrorCode"}
    assert got.fields["outcome"] == "Deleted"
    assert got.fields["jobId"] == "nightly-42"
    assert got.fields["httpStatus"] == 202
    assert got.fields["messageId"] == message.message_id
    assert (got.fields["deliveryCount"], got.fields["retryAttempt"], got.fields["attempts"]) == (1, 0, 1)
    assert got.record.body is not None
    assert "Deleted" in str(got.record.body)
    context = got.invocation.context
    assert context is not None
    assert (got.record.trace_id, got.record.span_id) == (context.trace_id, context.span_id)

    assert got.invocation.attributes is not None
    assert got.invocation.attributes["outcome"] == "Deleted"
    assert got.invocation.attributes["messaging.message.id"] == message.message_id
    assert got.invocation.status.status_code is StatusCode.UNSET
    assert got.invocation.parent is None  # no producer context, no host context: a new trace

    (batch,) = got.batch
    assert batch.parent is not None
    assert batch.parent.span_id == context.span_id
    assert batch.attributes is not None
    assert batch.attributes["http.request.method"] == "DELETE"
    assert batch.attributes["http.response.status_code"] == 202
    assert batch.attributes["batch.request_id"] == got.fields["requestId"]
    assert batch.attributes["batch.client_request_id"] == got.fields["clientRequestId"]
    assert "/jobs/nightly-42" in str(batch.attributes["url.full"])
    assert batch.attributes["server.address"] == "127.0.0.1"  # a host name, as the convention says
    assert not any("authorization" in key.lower() for key in batch.attributes)

    assert got.outcomes() == {("Deleted", "default"): 1}
    assert got.latency_count() == 1


@pytest.mark.parametrize("property_name", ["traceparent", "Diagnostic-Id"])
async def test_the_producers_trace_is_continued_even_when_it_was_not_sampled(
    processor: Processor, batch_emulator: BatchHandle, captured: Captured, property_name: str
) -> None:
    """A message with the producer's W3C context (as azure-servicebus writes it, under either name):
    the invocation span is its child, in its trace, and is exported although the flag says unsampled."""
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    properties = {property_name: f"00-{trace_id}-{parent_id}-00"}
    batch_emulator.control.add_job("traced")
    await processor.process(received({"jobId": "traced"}, application_properties=properties))

    got = Exported(captured)
    assert got.invocation.parent is not None
    assert got.invocation.parent.trace_id == int(trace_id, 16)
    assert got.invocation.parent.span_id == int(parent_id, 16)
    assert got.invocation.parent.is_remote
    assert got.record.trace_id == int(trace_id, 16)
    (batch,) = got.batch
    assert batch.context is not None
    assert batch.context.trace_id == int(trace_id, 16)


async def test_a_malformed_traceparent_starts_a_new_trace(
    processor: Processor, batch_emulator: BatchHandle, captured: Captured
) -> None:
    """A traceparent that is not W3C's format is ignored: the message is processed in a trace of its own."""
    batch_emulator.control.add_job("odd")
    await processor.process(received({"jobId": "odd"}, application_properties={"traceparent": "nonsense"}))
    got = Exported(captured)
    assert got.invocation.parent is None
    assert got.fields["outcome"] == "Deleted"


@pytest.mark.parametrize(
    ("body", "fault", "retry_attempt", "outcome", "batch_spans", "failed"),
    [
        ({"jobId": "kept", "ifMatch": '"stale"'}, None, 0, "PreconditionFailed", 1, False),
        ({"jobId": "kept"}, {"status": 400, "code": "InvalidHeaderValue"}, 0, "BatchRejected", 1, True),
        (
            {"jobId": "kept"},
            {"status": 503, "code": "ServerBusy", "retryAfter": "0"},
            0,
            "RetryScheduled",
            3,
            False,
        ),
        (
            {"jobId": "kept"},
            {"status": 503, "code": "ServerBusy", "retryAfter": "0"},
            2,
            "RetriesExhausted",
            3,
            True,
        ),
    ],
)
async def test_each_failure_outcome_is_exported(
    processor: Processor,
    batch_emulator: BatchHandle,
    servicebus: ServiceBusHandle,
    captured: Captured,
    body: dict[str, Any],
    fault: dict[str, Any] | None,
    retry_attempt: int,
    outcome: str,
    batch_spans: int,
    failed: bool,
) -> None:
    """Each failure's record, span and count; an ERROR-level outcome marks the invocation span failed
    (a failed request in Application Insights); every Batch attempt is a dependency span."""
    batch_emulator.control.add_job("kept")
    if fault is not None:
        batch_emulator.control.add_fault(match={"jobId": "kept"}, times=None, **fault)
    message = received(body, retry_attempt=retry_attempt)
    result = await processor.process(message)
    assert result.outcome == outcome
    records(servicebus)  # leave the queue empty for the next case

    got = Exported(captured)
    assert got.fields["outcome"] == outcome
    assert got.fields["httpStatus"] == result.http_status
    assert got.fields["attempts"] == batch_spans
    assert got.fields["retryAttempt"] == retry_attempt
    assert got.invocation.attributes is not None
    assert got.invocation.attributes["outcome"] == outcome
    assert (got.invocation.status.status_code is StatusCode.ERROR) is failed
    assert len(got.batch) == batch_spans
    statuses = {span.attributes["http.response.status_code"] for span in got.batch if span.attributes}
    assert statuses == {result.http_status}
    assert got.outcomes() == {(outcome, "default"): 1}
    assert got.latency_count() == batch_spans


async def test_invalid_message_has_no_batch_span_and_an_unlisted_account_label(
    processor: Processor, servicebus: ServiceBusHandle, captured: Captured
) -> None:
    """An invalid message: no Batch request, so no dependency span; the producer's account text is in
    the record but never a metric label (it would make a time series per message)."""
    result = await processor.process(received({"jobId": "fine", "account": "not-listed"}))
    assert result.outcome == "InvalidMessage"
    records(servicebus)
    got = Exported(captured)
    assert got.batch == []
    assert got.fields["account"] == "not-listed"
    assert got.fields["attempts"] == 0
    assert got.invocation.status.status_code is StatusCode.ERROR
    assert got.outcomes() == {("InvalidMessage", "unlisted"): 1}


async def test_a_listed_account_is_a_label(
    processor: Processor, batch_emulator: BatchHandle, captured: Captured
) -> None:
    """A listed account's name is the counter's account label."""
    batch_emulator.control.add_job("acct-job")
    await processor.process(received({"jobId": "acct-job", "account": "second"}))
    assert Exported(captured).outcomes() == {("Deleted", "second"): 1}


async def test_no_answer_is_a_failed_dependency_span(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle, captured: Captured
) -> None:
    """Batch drops every connection: each attempt's span is failed with error.type connection and has
    no status code; the outcome is RetryScheduled."""
    batch_emulator.control.add_fault(drop=True, times=None)
    result = await processor.process(received({"jobId": "gone-quiet"}))
    assert result.outcome == "RetryScheduled"
    got = Exported(captured)
    assert len(got.batch) == result.attempts >= 1
    for span in got.batch:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "connection"
        assert "http.response.status_code" not in span.attributes
    assert "httpStatus" not in got.fields


@pytest.mark.parametrize(
    ("state", "outcome", "status"),
    [(None, "AlreadyDeleted", 404), ("deleting", "AlreadyDeleting", 409)],
)
async def test_already_deleted_and_deleting_are_exported(
    processor: Processor,
    batch_emulator: BatchHandle,
    captured: Captured,
    state: str | None,
    outcome: str,
    status: int,
) -> None:
    """404 JobNotFound and 409 JobBeingDeleted: quiet outcomes, counted, the span not failed."""
    if state is not None:
        batch_emulator.control.configure(deleteDelayMs=60_000)
        batch_emulator.control.add_job("was-there", state=state)
    await processor.process(received({"jobId": "was-there"}))
    got = Exported(captured)
    assert (got.fields["outcome"], got.fields["httpStatus"]) == (outcome, status)
    assert got.invocation.status.status_code is StatusCode.UNSET
    (batch,) = got.batch
    assert batch.attributes is not None
    assert batch.attributes["http.response.status_code"] == status
    assert got.outcomes() == {(outcome, "default"): 1}


async def test_abandoned_is_exported_before_the_exception_leaves(
    batch_emulator: BatchHandle, servicebus: ServiceBusHandle, captured: Captured
) -> None:
    """The failure record cannot be sent (no such queue): process() raises, and the invocation's span,
    record and count say Abandoned, the span failed."""
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": "no-such-queue",
            "ServiceBusConnection": servicebus.connection_string,
        }
    )
    batch_emulator.control.add_job("kept")
    processor = Processor.create(settings, telemetry=captured.telemetry())
    try:
        with pytest.raises(Exception, match=r"(?i)not.?found|no-such-queue"):
            await processor.process(received({"jobId": "kept", "ifMatch": "stale"}))
    finally:
        await processor.close()
    got = Exported(captured)
    assert got.fields["outcome"] == "Abandoned"
    assert got.invocation.status.status_code is StatusCode.ERROR
    assert got.outcomes() == {("Abandoned", "default"): 1}
