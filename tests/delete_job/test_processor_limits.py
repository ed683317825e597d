"""The processor at the real host's edges (contract v2 sections 2-3): a 403 while a role assignment
applies, an identity endpoint that gives no token, a Batch that holds the connection past the invocation's
deadline, a Service Bus that stops answering sends. Real emulators, real SDKs, small settings (deadlines
of seconds) so that each test is short; nothing is timed, what a user sees is checked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from delete_job.processor import Processor
from emulators import RunningProcess, start
from emulators.servicebus import connection_string
from shared.servicebus import SendTimeoutError
from shared.settings import load_settings
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle
from tests.delete_job.test_processor import drain, peek, props, received, record_body, records

pytestmark = pytest.mark.usefixtures("identity_env")

MakeProcessor = Callable[..., AbstractAsyncContextManager[Processor]]


@pytest.fixture
def make_processor(batch_emulator: BatchHandle, servicebus: ServiceBusHandle) -> MakeProcessor:
    """A processor on this test's queues; keyword arguments are settings that override the defaults."""

    @asynccontextmanager
    async def make(**overrides: str) -> AsyncIterator[Processor]:
        settings = {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection": servicebus.connection_string,
            "RETRY_DELAYS": "60,300",
            "QUICK_RETRY_DELAYS": "0.01,0.01",
            **overrides,
        }
        processor = Processor.create(load_settings(settings))
        try:
            yield processor
        finally:
            await processor.close()

    return make


# --- 403: role assignments take minutes to apply ---------------------------------------------------


async def test_403_takes_a_delayed_retry_without_quick_retries(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """403 on the first delivery: one request (no quick retries: seconds would not outlast a role
    assignment's minutes), no record, a copy scheduled RETRY_DELAYS[0] later; the job is untouched."""
    batch_emulator.control.add_job("new-deployment")
    batch_emulator.control.add_fault(status=403, code="AuthorizationFailure", times=None)
    before = datetime.now(UTC)
    async with make_processor() as processor:
        result = await processor.process(received({"jobId": "new-deployment"}, message_id="m-403"))
    assert (result.outcome, result.attempts, result.http_status) == ("RetryScheduled", 1, 403)
    assert len(batch_emulator.control.requests()) == 1
    assert records(servicebus) == []
    (copy,) = peek(servicebus, servicebus.queues.queue)
    assert copy.message_id == "m-403:retry1"
    assert props(copy) == {"retryAttempt": 1, "originalMessageId": "m-403"}
    assert copy.scheduled_enqueue_time_utc is not None
    assert copy.scheduled_enqueue_time_utc - before > timedelta(seconds=59)
    job = batch_emulator.control.get_job("new-deployment")
    assert job is not None
    assert job["state"] == "active"


async def test_403_through_the_whole_schedule_is_retries_exhausted(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Still 403 on the last delayed retry: a RetriesExhausted record with the 403, Batch's error, and a
    description that says a role assignment should have applied by now and which role is needed."""
    batch_emulator.control.add_fault(status=403, code="AuthorizationFailure", times=None)
    copy = received(
        {"jobId": "never-allowed"},
        message_id="m-403:retry2",
        application_properties={"retryAttempt": 2, "originalMessageId": "m-403"},
        retry_attempt=2,
    )
    async with make_processor() as processor:
        result = await processor.process(copy)
    assert (result.outcome, result.attempts) == ("RetriesExhausted", 1)
    assert drain(servicebus, servicebus.queues.queue) == []
    (record,) = records(servicebus)
    assert record.message_id == "m-403:failed"
    body = record_body(record)
    assert (body["reason"], body["httpStatus"], body["batchError"]["code"]) == (
        "RetriesExhausted",
        403,
        "AuthorizationFailure",
    )
    assert "HTTP 403 AuthorizationFailure" in body["description"]
    assert "Azure Batch Job Submitter" in body["description"]


async def test_403_then_202_deletes_on_the_delayed_retry(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """The role assignment applies between the first delivery and its retry copy: the copy deletes the
    job, and no record is ever written."""
    batch_emulator.control.add_job("soon-allowed")
    batch_emulator.control.add_fault(status=403, code="AuthorizationFailure", times=1)
    async with make_processor() as processor:
        first = await processor.process(received({"jobId": "soon-allowed"}, message_id="m-soon"))
        (copy,) = drain(servicebus, servicebus.queues.queue)
        second = await processor.process(
            received({"jobId": "soon-allowed"}, message_id=copy.message_id, retry_attempt=1)
        )
    assert (first.outcome, second.outcome) == ("RetryScheduled", "Deleted")
    assert records(servicebus) == []


# --- no token: the identity endpoint fails ---------------------------------------------------------


async def test_no_token_is_retried_quickly_then_by_a_retry_copy(
    make_processor: MakeProcessor,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    servicebus: ServiceBusHandle,
) -> None:
    """The identity endpoint refuses every token request: the invocation does not raise (which would
    dead-letter the message after maxDeliveryCount quick redeliveries) but makes its quick retries, then
    schedules a copy; Batch is never called without a token."""
    identity_endpoint.control.add_fault(status=400, times=None)  # not retried by the credential itself
    async with make_processor() as processor:
        result = await processor.process(received({"jobId": "needs-token"}, message_id="m-token"))
    assert (result.outcome, result.attempts) == ("RetryScheduled", 0)
    assert batch_emulator.control.requests() == []
    assert identity_endpoint.control.stats()["tokenRequests"] == 3  # the first try and two quick retries
    (copy,) = peek(servicebus, servicebus.queues.queue)
    assert copy.message_id == "m-token:retry1"
    assert records(servicebus) == []


async def test_a_token_on_the_quick_retry_deletes(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, identity_endpoint: IdentityHandle
) -> None:
    """One failed token request, then the endpoint answers: the quick retry deletes the job."""
    batch_emulator.control.add_job("token-later")
    identity_endpoint.control.add_fault(status=400, times=1)
    async with make_processor() as processor:
        result = await processor.process(received({"jobId": "token-later"}))
    assert (result.outcome, result.attempts) == ("Deleted", 1)


async def test_no_token_through_the_whole_schedule_names_the_identity_failure(
    make_processor: MakeProcessor,
    identity_endpoint: IdentityHandle,
    servicebus: ServiceBusHandle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On the last delayed retry, still no token: a RetriesExhausted record whose description names the
    identity failure and what to check; no token or identity secret anywhere in it or in the log."""
    caplog.set_level(logging.DEBUG)
    identity_endpoint.control.add_fault(status=400, times=None)
    copy = received(
        {"jobId": "no-identity"},
        message_id="m-id:retry2",
        application_properties={"retryAttempt": 2, "originalMessageId": "m-id"},
        retry_attempt=2,
    )
    async with make_processor() as processor:
        result = await processor.process(copy)
    assert result.outcome == "RetriesExhausted"
    (record,) = records(servicebus)
    body = record_body(record)
    assert (body["httpStatus"], body["attempts"]) == (None, 0)
    assert "no token from the managed identity endpoint (ClientAuthenticationError" in body["description"]
    assert "AZURE_CLIENT_ID" in body["description"]
    everything = str(b"".join(record.body)) + "\n".join(r.getMessage() for r in caplog.records)
    assert identity_endpoint.secret not in everything
    assert "eyJ" not in everything


# --- the invocation's deadline ---------------------------------------------------------------------


async def test_batch_holding_the_connection_past_the_deadline_takes_the_delayed_retry_path(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Batch holds the request far past INVOCATION_DEADLINE (6 s): the attempt is cut off in time to send
    a retry copy (a quarter of the deadline is kept for it: a cold sender opens its connection first), no
    quick retry is started without time for it, and process() returns normally."""
    batch_emulator.control.add_job("slow")
    batch_emulator.control.add_fault(match={"jobId": "slow"}, latencyMs=60_000, times=None)
    async with make_processor(INVOCATION_DEADLINE="6") as processor:
        result = await processor.process(received({"jobId": "slow"}, message_id="m-slow"))
    assert (result.outcome, result.attempts, result.http_status) == ("RetryScheduled", 1, None)
    (copy,) = peek(servicebus, servicebus.queues.queue)
    assert copy.message_id == "m-slow:retry1"


async def test_a_deadline_cut_on_the_last_retry_is_recorded_as_such(
    make_processor: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """The same on the last delayed retry: the RetriesExhausted record says the answer did not come
    within what INVOCATION_DEADLINE left."""
    batch_emulator.control.add_fault(latencyMs=60_000, times=None)
    copy = received(
        {"jobId": "slow"},
        message_id="m-slow:retry2",
        application_properties={"retryAttempt": 2, "originalMessageId": "m-slow"},
        retry_attempt=2,
    )
    async with make_processor(INVOCATION_DEADLINE="6") as processor:
        result = await processor.process(copy)
    assert result.outcome == "RetriesExhausted"
    (record,) = records(servicebus)
    assert "no answer (timeout: no answer in the" in record_body(record)["description"]
    assert "INVOCATION_DEADLINE" in record_body(record)["description"]


@pytest.fixture(scope="module")
def stalled_servicebus() -> Iterator[RunningProcess]:
    """A Service Bus emulator whose failure queue never answers a send (stallSendRate=1)."""
    with start(
        "emulators.servicebus", "--queue", "deletions", "--queue", "failed:stallSendRate=1"
    ) as process:
        yield process


async def test_sends_that_stall_raise_within_the_deadline(
    batch_emulator: BatchHandle, stalled_servicebus: RunningProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Service Bus stops answering: three failure records to send at once, one at a time per queue. Each
    invocation raises SendTimeoutError (so the host abandons and the message comes back) instead of
    waiting on the SDK or behind the others' sends past its deadline; nothing is deleted."""
    caplog.set_level(logging.INFO)
    batch_emulator.control.add_job("guarded")
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": "deletions",
            "DEAD_LETTER_QUEUE": "failed",
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection": connection_string(stalled_servicebus.url),
            "INVOCATION_DEADLINE": "2",
        }
    )
    processor = Processor.create(settings)
    body: dict[str, Any] = {"jobId": "guarded", "ifMatch": "0x8D0000000000009"}
    try:
        results = await asyncio.gather(
            *(processor.process(received(body, message_id=f"stall-{n}")) for n in range(3)),
            return_exceptions=True,
        )
    finally:
        await processor.close()
    assert [type(result) for result in results] == [SendTimeoutError] * 3, results
    assert {str(result).split(" did not")[0] for result in results} == {"sending to queue 'failed'"}
    logs = [r for r in caplog.records if r.name == "delete_job"]
    assert [r.outcome for r in logs] == ["Abandoned"] * 3  # type: ignore[attr-defined]
    assert all("SendTimeoutError" in r.getMessage() for r in logs)
    job = batch_emulator.control.get_job("guarded")
    assert job is not None
    assert job["state"] == "active"
