"""What the processor exports for a verification message (contract section 6 and 7), read back from the
in-memory exporters: each row of section 6's table is one outcome (DeletionConfirmed, Recreated,
VerificationScheduled, DeletionStuck), with its record's fields as log attributes, the invocation span in
the producer's trace (a verification message keeps the original's properties), one CLIENT span for the
Get Job (GET, Batch's status and request-id) and the outcome counter. Real emulators, as in
tests/delete_job/test_telemetry.py; the canary watches every exported item (emulators/telemetry.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from delete_job.processor import Processor
from emulators.telemetry import Captured, capture
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle
from tests.delete_job.test_processor import received
from tests.delete_job.test_telemetry import FIELDS, Exported, telemetry_settings

pytestmark = pytest.mark.usefixtures("identity_env")

TIMEOUT = 60.0  # VERIFY_DELETION_TIMEOUT: a deletion accepted longer ago than this is DeletionStuck
TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
# As azure-servicebus writes a producer's context (azure/servicebus/_common/tracing.py, trace_message).
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CLIENT_REQUEST_ID = "9b2c7d1e-0f3a-4c5b-8d6e-7f8091a2b3c4"


@pytest.fixture
def captured() -> Captured:
    return capture("verification telemetry test")


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
        VERIFY_DELETION_AFTER="1",
        VERIFY_DELETION_TIMEOUT=str(TIMEOUT),
    )
    telemetry = captured.telemetry(accounts=list(settings.batch_accounts), queue=settings.deletion_queue)
    created = Processor.create(settings, telemetry=telemetry)
    yield created
    await created.close()


def verification(deleted_ago: float) -> Any:
    """Verification 1 of a request whose deletion Batch accepted `deleted_ago` seconds ago, from a
    producer that traced it and named its requests (the original's properties, section 6)."""
    deleted_at = datetime.now(UTC) - timedelta(seconds=deleted_ago)
    return received(
        {"jobId": "verified", "clientRequestId": CLIENT_REQUEST_ID},
        message_id="original-1:verify1",
        application_properties={
            "Diagnostic-Id": TRACEPARENT,
            "traceparent": TRACEPARENT,
            "originalMessageId": "original-1",
            "verifyAttempt": 1,
            "deletedAt": deleted_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    )


@pytest.mark.parametrize(
    ("job", "deleted_ago", "outcome", "status", "failed"),
    [
        (None, 5.0, "DeletionConfirmed", 404, False),
        ({"state": "active"}, 3600.0, "Recreated", 200, False),  # created now, deleted an hour ago
        ({"state": "deleting", "deleteStuck": True}, 5.0, "VerificationScheduled", 200, False),
        ({"state": "deleting", "deleteStuck": True}, 2 * TIMEOUT, "DeletionStuck", 200, True),
    ],
)
async def test_each_verification_outcome_is_exported(
    processor: Processor,
    batch_emulator: BatchHandle,
    captured: Captured,
    job: dict[str, Any] | None,
    deleted_ago: float,
    outcome: str,
    status: int,
    failed: bool,
) -> None:
    """One Get Job, never a DELETE: its CLIENT span (GET, status, request-id, the producer's
    client-request-id) under the invocation span, which continues the producer's trace and carries the
    outcome (failed only for DeletionStuck, an ERROR record); the record's fields; the count."""
    if job is not None:
        if job["state"] == "deleting":  # the job that was deleted: created before its deletion
            created = datetime.now(UTC) - timedelta(seconds=deleted_ago + 60)
            job = {**job, "creationTime": created.isoformat()}
        batch_emulator.control.add_job("verified", **job)
    message = verification(deleted_ago)
    result = await processor.process(message)
    assert result.outcome == outcome  # so the next look, or the record, was sent (else: Abandoned)

    got = Exported(captured)
    present = set(FIELDS) - {"account"} - ({"batchErrorCode"} if status < 400 else set())
    assert set(got.fields) == present
    assert (got.fields["outcome"], got.fields["httpStatus"], got.fields["attempts"]) == (outcome, status, 1)
    assert (got.fields["messageId"], got.fields["deliveryCount"]) == ("original-1:verify1", 1)
    assert got.fields["clientRequestId"] == CLIENT_REQUEST_ID

    context = got.invocation.context
    assert context is not None
    assert (got.record.trace_id, got.record.span_id) == (context.trace_id, context.span_id)
    assert got.invocation.attributes is not None
    assert got.invocation.attributes["outcome"] == outcome
    assert got.invocation.parent is not None
    assert (got.invocation.parent.trace_id, got.invocation.parent.span_id) == (
        int(TRACE_ID, 16),
        int(PARENT_ID, 16),
    )
    assert (got.invocation.status.status_code is StatusCode.ERROR) is failed

    (batch,) = got.batch
    assert batch.parent is not None
    assert batch.parent.span_id == context.span_id
    assert batch.name == "Batch GET"
    assert batch.attributes is not None
    assert batch.attributes["http.request.method"] == "GET"
    assert batch.attributes["http.response.status_code"] == status
    assert batch.attributes["batch.request_id"] == got.fields["requestId"]
    assert batch.attributes["batch.client_request_id"] == CLIENT_REQUEST_ID
    assert "/jobs/verified" in str(batch.attributes["url.full"])
    assert [r["method"] for r in batch_emulator.control.requests()] == ["GET"]  # looked, never deleted

    assert got.outcomes() == {(outcome, "default"): 1}
    assert got.latency_count() == 1
