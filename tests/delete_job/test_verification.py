"""Verifying deletions (contract v2 section 6) with the processor against the real emulators.

Each row of section 6's table is driven through real sockets: the verification message is the one the
processor scheduled on the Service Bus emulator, received when Service Bus delivers it (short settings:
VERIFY_DELETION_AFTER=1), and processed like any other; the Batch emulator's request log shows what the
function asked (a verification never sends a DELETE).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage

from delete_job.processor import Processor, Result
from delete_job.records import Received
from shared.settings import load_settings
from tests.conftest import BatchHandle, ServiceBusHandle
from tests.delete_job.test_processor import props, received, record_body, records
from tests.polling import wait_for

pytestmark = pytest.mark.usefixtures("identity_env")

Make = Callable[..., Awaitable[Processor]]


@pytest.fixture
async def make(batch_emulator: BatchHandle, servicebus: ServiceBusHandle) -> AsyncIterator[Make]:
    """A processor with short verification settings (overridable per test)."""
    created: list[Processor] = []

    async def make_processor(**overrides: str) -> Processor:
        env = {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "ServiceBusConnection": servicebus.connection_string,
            "RETRY_DELAYS": "60,300",
            "QUICK_RETRY_DELAYS": "0.01,0.01",
            "VERIFY_DELETION_AFTER": "1",
            "VERIFY_DELETION_TIMEOUT": "60",
            **overrides,
        }
        processor = Processor.create(load_settings(env))
        created.append(processor)
        return processor

    yield make_processor
    for processor in created:
        await processor.close()


def plain(message: ServiceBusReceivedMessage) -> Received:
    """A delivered message as the function's trigger hands it to the processor."""
    properties = props(message)
    return Received(
        message_id=message.message_id or "",
        body=b"".join(message.body),
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        subject=message.subject,
        enqueued_time_utc=message.enqueued_time_utc,
        delivery_count=message.delivery_count,
        application_properties=properties,
    )


def deliver(
    servicebus: ServiceBusHandle, message_id: str, timeout: float = 20.0
) -> ServiceBusReceivedMessage:
    """Receive (and complete) `message_id` from the deletion queue when Service Bus delivers it."""
    with (
        ServiceBusClient.from_connection_string(servicebus.connection_string) as client,
        client.get_queue_receiver(servicebus.queues.queue) as receiver,
    ):

        def arrived() -> ServiceBusReceivedMessage | None:
            for message in receiver.receive_messages(max_message_count=10, max_wait_time=1):
                receiver.complete_message(message)
                if message.message_id == message_id:
                    return message
                pytest.fail(f"unexpected message {message.message_id} on the deletion queue")
            return None

        return wait_for(arrived, f"message {message_id}", timeout)


def nothing_waiting(servicebus: ServiceBusHandle) -> bool:
    with (
        ServiceBusClient.from_connection_string(servicebus.connection_string) as client,
        client.get_queue_receiver(servicebus.queues.queue) as receiver,
    ):
        return not receiver.peek_messages(max_message_count=5)


def methods_since(batch_emulator: BatchHandle, seq: int) -> list[str]:
    return [entry["method"] for entry in batch_emulator.control.requests(since=seq)]


def last_seq(batch_emulator: BatchHandle) -> int:
    entries = batch_emulator.control.requests()
    return int(entries[-1]["seq"]) if entries else 0


async def delete(processor: Processor, job_id: str, **kwargs: Any) -> tuple[Result, Received]:
    message = received({"jobId": job_id}, **kwargs)
    result = await processor.process(message)
    return result, message


async def test_deleted_job_is_confirmed_gone(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Deleted -> verification 1 (id, properties, schedule); delivered, it GETs (never DELETEs): 404 ->
    DeletionConfirmed, nothing more sent."""
    processor = await make()
    batch_emulator.control.add_job("gone-1")
    before = datetime.now(UTC)
    result, message = await delete(
        processor, "gone-1", correlation_id="c-1", application_properties={"team": "a"}
    )
    assert result.outcome == "Deleted"
    verification = deliver(servicebus, f"{message.message_id}:verify1")
    properties = props(verification)
    deleted_at = datetime.fromisoformat(properties.pop("deletedAt"))
    assert properties == {"team": "a", "originalMessageId": message.message_id, "verifyAttempt": 1}
    assert before - timedelta(seconds=1) <= deleted_at <= datetime.now(UTC)
    assert verification.correlation_id == "c-1"
    assert json.loads(b"".join(verification.body)) == {"jobId": "gone-1"}
    assert verification.scheduled_enqueue_time_utc is not None
    assert verification.scheduled_enqueue_time_utc >= deleted_at + timedelta(seconds=1) - timedelta(
        milliseconds=5
    )

    seq = last_seq(batch_emulator)
    checked = await processor.process(plain(verification))
    assert (checked.outcome, checked.http_status, checked.batch_error_code) == (
        "DeletionConfirmed",
        404,
        "JobNotFound",
    )
    assert methods_since(batch_emulator, seq) == ["GET"]
    (logged,) = batch_emulator.control.requests(since=seq)
    assert logged["query"]["$select"] == "id,state,creationTime,stateTransitionTime"
    assert nothing_waiting(servicebus)
    assert records(servicebus) == []


async def test_a_recreated_job_is_left_alone(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """A job created again under the id after the deletion: Recreated, never deleted, nothing sent."""
    processor = await make()
    batch_emulator.control.add_job("again-1")
    _, message = await delete(processor, "again-1")
    batch_emulator.control.add_job("again-1")  # someone's new job, created after deletedAt
    verification = deliver(servicebus, f"{message.message_id}:verify1")
    seq = last_seq(batch_emulator)
    checked = await processor.process(plain(verification))
    assert checked.outcome == "Recreated"
    assert methods_since(batch_emulator, seq) == ["GET"]
    job = batch_emulator.control.get_job("again-1")
    assert job is not None
    assert job["state"] == "active"
    assert nothing_waiting(servicebus)
    assert records(servicebus) == []


async def test_still_deleting_then_confirmed(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Still deleting at verification 1 -> VerificationScheduled and verification 2 (twice the wait);
    gone at verification 2 -> DeletionConfirmed."""
    processor = await make()
    batch_emulator.control.add_job("slow-1", deleteDelayMs=10_000)  # longer than verification 1 takes
    _, message = await delete(processor, "slow-1")
    first = deliver(servicebus, f"{message.message_id}:verify1")
    checked = await processor.process(plain(first))
    assert checked.outcome == "VerificationScheduled"
    assert records(servicebus) == []
    second = deliver(servicebus, f"{message.message_id}:verify2")
    assert props(second)["verifyAttempt"] == 2
    assert props(second)["deletedAt"] == props(first)["deletedAt"]
    assert props(second)["originalMessageId"] == message.message_id
    assert second.scheduled_enqueue_time_utc is not None
    assert first.scheduled_enqueue_time_utc is not None
    assert second.scheduled_enqueue_time_utc - first.scheduled_enqueue_time_utc >= timedelta(seconds=2)
    wait_for(lambda: batch_emulator.control.get_job("slow-1") is None, "the deletion to finish")
    seq = last_seq(batch_emulator)
    assert (await processor.process(plain(second))).outcome == "DeletionConfirmed"
    assert methods_since(batch_emulator, seq) == ["GET"]
    assert nothing_waiting(servicebus)


async def test_stuck_past_the_timeout_is_recorded_once(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """A job that never leaves `deleting`: once deletedAt + VERIFY_DELETION_TIMEOUT has passed, one
    DeletionStuck record with its state, stateTransitionTime and what to do; no further verification."""
    processor = await make(VERIFY_DELETION_TIMEOUT="1")
    batch_emulator.control.add_job("stuck-1", deleteStuck=True)
    _, message = await delete(processor, "stuck-1")
    verification = deliver(servicebus, f"{message.message_id}:verify1")  # delivered 1 s on: timed out
    seq = last_seq(batch_emulator)
    checked = await processor.process(plain(verification))
    assert (checked.outcome, checked.http_status) == ("DeletionStuck", 200)
    assert methods_since(batch_emulator, seq) == ["GET"]
    (record,) = records(servicebus)
    assert record.message_id == f"{message.message_id}:failed"
    assert record.subject == "DeletionStuck"
    body = record_body(record)
    job = batch_emulator.control.get_job("stuck-1")
    assert job is not None
    assert body["reason"] == "DeletionStuck"
    assert body["jobId"] == "stuck-1"
    assert body["httpStatus"] == 200
    assert body["batchError"] is None
    assert "is still deleting since " in body["description"]
    assert job["stateTransitionTime"][:19] in body["description"]
    assert "check the pool's nodes, or replay with force" in body["description"]
    assert props(record)["originalMessageId"] == message.message_id
    assert nothing_waiting(servicebus)


async def test_transient_failure_during_verification_looks_again(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """503s on the GET: quick retries (3 GETs), then VerificationScheduled with verification 2; no record."""
    processor = await make()
    batch_emulator.control.add_job("flaky-1")
    _, message = await delete(processor, "flaky-1")
    verification = deliver(servicebus, f"{message.message_id}:verify1")
    batch_emulator.control.add_fault(match={"method": "GET"}, status=503, times=3)
    seq = last_seq(batch_emulator)
    checked = await processor.process(plain(verification))
    assert (checked.outcome, checked.http_status, checked.attempts) == ("VerificationScheduled", 503, 3)
    assert methods_since(batch_emulator, seq) == ["GET", "GET", "GET"]
    assert records(servicebus) == []
    second = deliver(servicebus, f"{message.message_id}:verify2")
    assert (await processor.process(plain(second))).outcome == "DeletionConfirmed"


async def test_forbidden_during_verification_looks_again_without_quick_retries(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """403 on the GET: no quick retry (one GET), VerificationScheduled; no record."""
    processor = await make()
    batch_emulator.control.add_job("locked-1")
    _, message = await delete(processor, "locked-1")
    verification = deliver(servicebus, f"{message.message_id}:verify1")
    batch_emulator.control.add_fault(
        match={"method": "GET"}, status=403, code="InsufficientPermissions", times=5
    )
    seq = last_seq(batch_emulator)
    checked = await processor.process(plain(verification))
    assert (checked.outcome, checked.http_status, checked.attempts) == ("VerificationScheduled", 403, 1)
    assert methods_since(batch_emulator, seq) == ["GET"]
    assert records(servicebus) == []
    deliver(servicebus, f"{message.message_id}:verify2")


async def test_any_other_answer_is_recorded_stuck_at_once(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """401 on the GET: DeletionStuck at once, with Batch's answer and error in the record."""
    processor = await make()
    batch_emulator.control.add_job("denied-1")
    _, message = await delete(processor, "denied-1")
    verification = deliver(servicebus, f"{message.message_id}:verify1")
    batch_emulator.control.add_fault(match={"method": "GET"}, status=401, code="AuthenticationFailed")
    checked = await processor.process(plain(verification))
    assert checked.outcome == "DeletionStuck"
    (record,) = records(servicebus)
    body = record_body(record)
    assert body["httpStatus"] == 401
    assert body["batchError"]["code"] == "AuthenticationFailed"
    assert "HTTP 401 AuthenticationFailed" in body["description"]
    assert nothing_waiting(servicebus)


async def test_a_verify_attempt_property_never_deletes(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """A producer's message with verifyAttempt on an active job: a GET, no DELETE; the job stays."""
    processor = await make()
    batch_emulator.control.add_job("keep-1")
    message = received({"jobId": "keep-1"}, application_properties={"verifyAttempt": 1})
    checked = await processor.process(message)
    assert checked.outcome == "VerificationScheduled"
    assert methods_since(batch_emulator, 0) == ["GET"]
    job = batch_emulator.control.get_job("keep-1")
    assert job is not None
    assert job["state"] == "active"
    deliver(servicebus, f"{message.message_id}:verify2")


async def test_already_deleting_is_verified_and_zero_turns_it_off(
    make: Make, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """AlreadyDeleting schedules verification 1 too; with VERIFY_DELETION_AFTER=0 nothing is sent."""
    processor = await make()
    batch_emulator.control.add_job("busy-1", state="deleting")
    result, message = await delete(processor, "busy-1")
    assert result.outcome == "AlreadyDeleting"
    deliver(servicebus, f"{message.message_id}:verify1")
    off = await make(VERIFY_DELETION_AFTER="0")
    batch_emulator.control.add_job("quiet-1")
    assert (await delete(off, "quiet-1"))[0].outcome == "Deleted"
    assert nothing_waiting(servicebus)


async def test_a_refused_verification_message_makes_the_message_come_back(
    make: Make, batch_emulator: BatchHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """If Service Bus refuses the verification message, process() raises (the host abandons the message,
    which comes back and finds the job deleting or gone) and logs Abandoned."""
    processor = await make(DELETION_QUEUE="no-such-queue")
    batch_emulator.control.add_job("unsent-1")
    with pytest.raises(Exception, match=r"(?i)not.?found|no-such-queue"):
        await delete(processor, "unsent-1")
    (log,) = [r for r in caplog.records if r.name == "delete_job"]
    assert log.outcome == "Abandoned"  # type: ignore[attr-defined]
