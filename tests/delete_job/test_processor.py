"""The processor against the real emulators: Batch, the identity endpoint and Service Bus.

Each row of the outcome table, driven through real sockets with the real httpx/aiohttp, azure-identity
and azure-servicebus code; what a user would see is read back: the job's state in the Batch emulator,
the failure record or retry copy on the queues, and the log record.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage

from delete_job.processor import Processor
from delete_job.records import Received
from shared.settings import load_settings
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle

pytestmark = pytest.mark.usefixtures("identity_env")


@pytest.fixture
async def processor(
    batch_emulator: BatchHandle, identity_env: IdentityHandle, servicebus: ServiceBusHandle
) -> AsyncIterator[Processor]:
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_emulator.url,
            "BATCH_ACCOUNTS": json.dumps({"second": batch_emulator.url}),
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection": servicebus.connection_string,
            "RETRY_DELAYS": "60,300",
            "QUICK_RETRY_DELAYS": "0.01,0.01",
        }
    )
    created = Processor.create(settings)
    yield created
    await created.close()


def received(body: dict[str, Any] | bytes, **kwargs: Any) -> Received:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    defaults: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "content_type": "application/json",
        "enqueued_time_utc": datetime.now(UTC),
        "delivery_count": 1,
    }
    return Received(body=raw, **{**defaults, **kwargs})


def drain(servicebus: ServiceBusHandle, queue: str, wait: float = 3.0) -> list[ServiceBusReceivedMessage]:
    """Everything on `queue` now (scheduled messages included, via peek), removed."""
    with (
        ServiceBusClient.from_connection_string(servicebus.connection_string) as client,
        client.get_queue_receiver(queue) as receiver,
    ):
        peeked = list(receiver.peek_messages(max_message_count=50))
        if not peeked:
            return []
        got = list(receiver.receive_messages(max_message_count=50, max_wait_time=wait))
        for message in got:
            receiver.complete_message(message)
        return got or peeked


def peek(servicebus: ServiceBusHandle, queue: str) -> list[ServiceBusReceivedMessage]:
    with (
        ServiceBusClient.from_connection_string(servicebus.connection_string) as client,
        client.get_queue_receiver(queue) as receiver,
    ):
        return list(receiver.peek_messages(max_message_count=5))


def records(servicebus: ServiceBusHandle) -> list[ServiceBusReceivedMessage]:
    return drain(servicebus, servicebus.queues.dedup)


def record_body(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(b"".join(message.body))
    return body


def props(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (message.application_properties or {}).items()
    }


def outcome_log(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    (record,) = [r for r in caplog.records if r.name == "delete_job"]
    return record


async def test_deleted_completes_with_nothing_sent(
    processor: Processor,
    batch_emulator: BatchHandle,
    servicebus: ServiceBusHandle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """202: the job is deleting, no record and no copy, one INFO log record with every field."""
    caplog.set_level(logging.INFO)
    batch_emulator.control.configure(deleteDelayMs=60_000)
    batch_emulator.control.add_job("nightly-42")
    message = received({"jobId": "nightly-42", "reason": "workflow 42 finished"}, correlation_id="c-1")
    result = await processor.process(message)

    assert (result.outcome, result.http_status, result.attempts) == ("Deleted", 202, 1)
    job = batch_emulator.control.get_job("nightly-42")
    assert job is not None
    assert job["state"] == "deleting"
    assert records(servicebus) == []
    assert drain(servicebus, servicebus.queues.queue) == []
    log = outcome_log(caplog)
    assert log.levelno == logging.INFO
    fields = {k: getattr(log, k) for k in ("outcome", "jobId", "account", "httpStatus", "batchErrorCode")}
    assert fields == {
        "outcome": "Deleted",
        "jobId": "nightly-42",
        "account": None,
        "httpStatus": 202,
        "batchErrorCode": None,
    }
    assert log.messageId == message.message_id  # type: ignore[attr-defined]
    assert log.deliveryCount == 1  # type: ignore[attr-defined]
    assert log.retryAttempt == 0  # type: ignore[attr-defined]
    assert log.attempts == 1  # type: ignore[attr-defined]
    assert uuid.UUID(log.requestId)  # type: ignore[attr-defined]
    assert uuid.UUID(log.clientRequestId)  # type: ignore[attr-defined]
    assert log.durationMs >= 0  # type: ignore[attr-defined]


async def test_options_reach_batch(processor: Processor, batch_emulator: BatchHandle) -> None:
    """force, timeOut, the preconditions and the producer's client-request-id go on the wire."""
    job = batch_emulator.control.add_job("opts")
    request_id = str(uuid.uuid4())
    body = {
        "jobId": "opts",
        "force": True,
        "timeOut": 5,
        "ifMatch": job["eTag"],
        "ifUnmodifiedSince": "2099-01-01T00:00:00Z",
        "clientRequestId": request_id,
    }
    result = await processor.process(received(body))
    assert result.outcome == "Deleted"
    (logged,) = batch_emulator.control.requests()
    assert logged["query"] == {"api-version": "2025-06-01", "timeOut": "5", "force": "true"}
    assert logged["headers"]["if-match"] == job["eTag"]
    assert logged["headers"]["if-unmodified-since"] == "Thu, 01 Jan 2099 00:00:00 GMT"
    assert logged["headers"]["client-request-id"] == request_id


async def test_already_deleted_and_already_deleting_complete_quietly(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """404 JobNotFound and 409 JobBeingDeleted are success: a duplicate message is harmless."""
    batch_emulator.control.configure(deleteDelayMs=60_000)
    batch_emulator.control.add_job("dup")
    first = await processor.process(received({"jobId": "dup"}))
    second = await processor.process(received({"jobId": "DUP"}))
    missing = await processor.process(received({"jobId": "never-was"}))
    assert [first.outcome, second.outcome, missing.outcome] == [
        "Deleted",
        "AlreadyDeleting",
        "AlreadyDeleted",
    ]
    assert (second.batch_error_code, missing.batch_error_code) == ("JobBeingDeleted", "JobNotFound")
    assert records(servicebus) == []


async def test_precondition_failed_deletes_nothing_and_records(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """412: the protected job stays active; the record carries Batch's error and the original message."""
    batch_emulator.control.add_job("protected")
    message = received(
        {"jobId": "protected", "ifMatch": "0x8D0000000000000"},
        message_id="m-412",
        application_properties={"producer": "sweep"},
    )
    result = await processor.process(message)
    assert result.outcome == "PreconditionFailed"
    job = batch_emulator.control.get_job("protected")
    assert job is not None
    assert job["state"] == "active"
    (record,) = records(servicebus)
    assert record.message_id == "m-412:failed"
    assert record.subject == "PreconditionFailed"
    assert record.correlation_id == "m-412"
    assert record.content_type == "application/json"
    assert props(record) == {
        "reason": "PreconditionFailed",
        "jobId": "protected",
        "httpStatus": 412,
        "batchErrorCode": "ConditionNotMet",
        "originalMessageId": "m-412",
        "retryAttempt": 0,
    }
    body = record_body(record)
    assert body["reason"] == "PreconditionFailed"
    assert body["jobId"] == "protected"
    assert body["account"] is None
    assert (body["attempts"], body["retryAttempt"], body["httpStatus"]) == (1, 0, 412)
    assert body["batchError"]["code"] == "ConditionNotMet"
    assert body["batchError"]["message"]["lang"] == "en-US"
    assert "RequestId:" in body["batchError"]["message"]["value"]
    assert uuid.UUID(body["requestId"])
    assert uuid.UUID(body["clientRequestId"])
    assert "ConditionNotMet" in body["description"]
    assert "\n" not in body["description"]
    assert datetime.fromisoformat(body["failedAt"].replace("Z", "+00:00")) <= datetime.now(UTC)
    original = body["originalMessage"]
    assert original["messageId"] == "m-412"
    assert json.loads(original["body"]) == {"jobId": "protected", "ifMatch": "0x8D0000000000000"}
    assert original["applicationProperties"] == {"producer": "sweep"}
    assert original["deliveryCount"] == 1


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (
            {"status": 400, "code": "InvalidHeaderValue", "values": [{"key": "HeaderName", "value": "x"}]},
            "InvalidHeaderValue",
            400,
        ),
        ({"status": 409, "code": "JobCompleted"}, "JobCompleted", 409),
        ({"status": 401, "body": "empty"}, None, 401),
    ],
)
async def test_batch_rejected_records_batch_error(
    processor: Processor,
    batch_emulator: BatchHandle,
    servicebus: ServiceBusHandle,
    fault: dict[str, Any],
    code: str | None,
    status: int,
) -> None:
    """A 4xx that retrying cannot fix becomes one BatchRejected record after a single attempt."""
    batch_emulator.control.add_fault(times=None, **fault)
    result = await processor.process(received({"jobId": "rejected"}))
    assert (result.outcome, result.attempts) == ("BatchRejected", 1)
    (record,) = records(servicebus)
    body = record_body(record)
    assert body["httpStatus"] == status
    assert (body["batchError"] or {}).get("code") == code
    if status == 401:
        assert "Azure Batch Job Submitter" in body["description"]


async def test_redirect_is_rejected_and_not_followed(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """A 307 to another host: BatchRejected, the record names the location, one request only."""
    batch_emulator.control.add_fault(status=307, redirect="http://127.0.0.1:9/jobs/r")
    result = await processor.process(received({"jobId": "r"}))
    assert result.outcome == "BatchRejected"
    (record,) = records(servicebus)
    assert "http://127.0.0.1:9/jobs/r" in record_body(record)["description"]
    assert len(batch_emulator.control.requests()) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"jobId": "../pools/x"}',
        b'{"jobId": "a", "ifmatch": "x"}',
        b"\xff\xfe",
        b'{"jobId": "a", "account": "nope"}',
    ],
)
async def test_invalid_message_records_without_calling_batch(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle, body: bytes
) -> None:
    """An invalid message (incl. an unlisted account) makes no HTTP request and one InvalidMessage record."""
    result = await processor.process(received(body, message_id="bad-1"))
    assert (result.outcome, result.attempts) == ("InvalidMessage", 0)
    assert batch_emulator.control.requests() == []
    (record,) = records(servicebus)
    assert record.subject == "InvalidMessage"
    record_json = record_body(record)
    assert record_json["httpStatus"] is None
    assert record_json["batchError"] is None
    original = record_json["originalMessage"]
    if body == b"\xff\xfe":
        assert original["bodyBase64"] == "//4="
    else:
        assert original["body"] == body.decode()
    assert "valid deletion request" in record_json["description"]


async def test_listed_account_uses_its_endpoint(processor: Processor, batch_emulator: BatchHandle) -> None:
    """A message naming a listed account is sent to that account's endpoint."""
    batch_emulator.control.add_job("acct-job")
    result = await processor.process(received({"jobId": "acct-job", "account": "second"}))
    assert (result.outcome, result.account) == ("Deleted", "second")


async def test_transient_then_success_ends_deleted_without_record(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """503, a dropped connection twice, then 202: quick retries inside the invocation end Deleted."""
    batch_emulator.control.add_job("flaky")
    batch_emulator.control.add_fault(match={"jobId": "flaky"}, status=503, code="ServerBusy", retryAfter="0")
    batch_emulator.control.add_fault(match={"jobId": "flaky"}, drop=True, times=2)
    result = await processor.process(received({"jobId": "flaky"}))
    assert result.outcome == "Deleted"
    assert result.attempts == 3  # aiohttp resends a dropped idempotent request once by itself
    assert records(servicebus) == []
    assert drain(servicebus, servicebus.queues.queue) == []


async def test_persistent_503_schedules_a_retry_copy(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Still 503 after the quick retries: a copy is scheduled RETRY_DELAYS[0] later, with its properties."""
    batch_emulator.control.add_fault(status=503, code="ServerBusy", times=None)
    before = datetime.now(UTC)
    message = received({"jobId": "busy"}, message_id="m-503", application_properties={"producer": "p"})
    result = await processor.process(message)
    assert (result.outcome, result.attempts) == ("RetryScheduled", 3)
    assert records(servicebus) == []
    (copy,) = peek(servicebus, servicebus.queues.queue)
    assert copy.message_id == "m-503:retry1"
    assert props(copy) == {"producer": "p", "retryAttempt": 1, "originalMessageId": "m-503"}
    assert json.loads(b"".join(copy.body)) == {"jobId": "busy"}
    assert copy.scheduled_enqueue_time_utc is not None
    delay = copy.scheduled_enqueue_time_utc - before
    assert timedelta(seconds=59) < delay < timedelta(seconds=75)


async def test_long_retry_after_skips_quick_retries_and_sets_the_delay(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """429 with Retry-After 600 s: no quick retry; the copy waits the longer of the step and Retry-After."""
    batch_emulator.control.add_fault(status=429, code="TooManyRequests", retryAfter="600", times=None)
    before = datetime.now(UTC)
    result = await processor.process(received({"jobId": "throttled"}, message_id="m-429"))
    assert (result.outcome, result.attempts) == ("RetryScheduled", 1)
    (copy,) = peek(servicebus, servicebus.queues.queue)
    assert copy.scheduled_enqueue_time_utc is not None
    assert copy.scheduled_enqueue_time_utc - before > timedelta(seconds=599)


async def test_retries_exhausted_records_the_last_answer(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """On the last delayed retry a transient answer becomes a RetriesExhausted record, no new copy."""
    batch_emulator.control.add_fault(status=500, code="InternalError", times=None)
    message = received(
        {"jobId": "doomed"},
        message_id="m-500:retry2",
        application_properties={"retryAttempt": 2, "originalMessageId": "m-500"},
        retry_attempt=2,
    )
    result = await processor.process(message)
    assert result.outcome == "RetriesExhausted"
    assert drain(servicebus, servicebus.queues.queue) == []
    (record,) = records(servicebus)
    assert record.message_id == "m-500:failed"  # named after the request
    assert props(record)["originalMessageId"] == "m-500"
    body = record_body(record)
    assert (body["retryAttempt"], body["httpStatus"], body["batchError"]["code"]) == (2, 500, "InternalError")
    assert "2 delayed retries" in body["description"]


async def test_a_redelivered_message_and_its_retry_copy_leave_one_record(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Found by the chaos run: a retry copy is sent, then completing the message fails (connection lost,
    host killed), so the message comes back and fails for good, and so does its copy. Contract section 5
    names the record after the request (`<originalMessageId>:failed`), so the failure queue's duplicate
    detection keeps one record for the request, whichever delivery sent it first."""
    batch_emulator.control.add_job("guarded")
    batch_emulator.control.add_fault(match={"jobId": "guarded"}, status=503, code="ServerBusy", times=3)
    body = {"jobId": "guarded", "ifMatch": "0x8D0000000000001"}
    first = await processor.process(received(body, message_id="m-twice"))
    assert first.outcome == "RetryScheduled"
    (copy,) = drain(servicebus, servicebus.queues.queue)
    again = await processor.process(received(body, message_id="m-twice", delivery_count=2))
    third = await processor.process(received(body, message_id="m-twice", delivery_count=3))
    copied = await processor.process(
        received(
            body,
            message_id=copy.message_id,
            application_properties=props(copy),
            retry_attempt=1,
        )
    )
    assert [r.outcome for r in (again, third, copied)] == ["PreconditionFailed"] * 3
    (record,) = records(servicebus)
    assert record.message_id == "m-twice:failed"
    assert props(record)["originalMessageId"] == "m-twice"
    assert record_body(record)["originalMessage"]["messageId"] == "m-twice"  # the first to fail for good
    job = batch_emulator.control.get_job("guarded")
    assert job is not None
    assert job["state"] == "active"


async def test_failed_record_send_raises_so_the_message_comes_back(
    batch_emulator: BatchHandle, servicebus: ServiceBusHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """If Service Bus refuses the failure record, process() raises (the host abandons) and logs Abandoned."""
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": "no-such-queue",
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection": servicebus.connection_string,
        }
    )
    batch_emulator.control.add_job("kept")
    processor = Processor.create(settings)
    try:
        with pytest.raises(Exception, match=r"(?i)not.?found|no-such-queue"):
            await processor.process(received({"jobId": "kept", "ifMatch": "stale"}))
    finally:
        await processor.close()
    log = outcome_log(caplog)
    assert log.outcome == "Abandoned"  # type: ignore[attr-defined]
    job = batch_emulator.control.get_job("kept")
    assert job is not None
    assert job["state"] == "active"


async def test_no_token_in_logs_records_or_errors(
    processor: Processor,
    batch_emulator: BatchHandle,
    servicebus: ServiceBusHandle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bearer token appears in no log record, failure record or exception text."""
    caplog.set_level(logging.DEBUG)
    batch_emulator.control.add_fault(status=403, code="AuthorizationFailure", times=None)
    await processor.process(received({"jobId": "secret-check"}))
    (request,) = batch_emulator.control.requests()
    assert request["headers"]["authorization"] == "Bearer REDACTED"  # the emulator saw a token
    everything = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    everything += "\n".join(str(b"".join(m.body)) for m in records(servicebus))
    assert "eyJ" not in everything
    assert "Bearer " not in everything


async def test_concurrent_first_records_all_get_sent(
    processor: Processor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle
) -> None:
    """Twenty failures at once on a fresh processor: every record is sent, none of them raises."""
    import asyncio  # noqa: PLC0415

    results = await asyncio.gather(
        *(
            processor.process(received({"jobId": f"x{i}", "ifmatch": "typo"}, message_id=f"c-{i}"))
            for i in range(20)
        )
    )
    assert {r.outcome for r in results} == {"InvalidMessage"}
    assert sorted(str(m.message_id) for m in records(servicebus)) == sorted(
        f"c-{i}:failed" for i in range(20)
    )


async def test_a_newline_in_the_message_id_cannot_forge_a_log_line(
    processor: Processor, batch_emulator: BatchHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """The message id comes from the producer and appears in the log text: control characters are escaped,
    so a plain-text log stream shows one line per message; the custom dimension keeps the id as sent."""
    caplog.set_level(logging.INFO)
    batch_emulator.control.add_job("one-line")
    forged = "m-1\nDeleted: job prod-db (message m-2)\u2028\x1b[2J"
    await processor.process(received({"jobId": "one-line"}, message_id=forged))
    log = outcome_log(caplog)
    assert log.getMessage() == (
        "Deleted: job one-line (message m-1\\nDeleted: job prod-db (message m-2)\\u2028\\x1b[2J), "
        "Batch answered 202"
    )
    assert log.__dict__["messageId"] == forged


async def test_an_unlisted_account_with_a_lone_surrogate_is_logged_encodable(
    processor: Processor, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON's "\\udfff" decodes to a lone surrogate: the log's account field must still encode as UTF-8 (the
    worker ships custom dimensions as UTF-8), so the unencodable character becomes "?"."""
    caplog.set_level(logging.INFO)
    result = await processor.process(received(b'{"jobId": "x", "account": "\\udfff"}'))
    assert result.outcome == "InvalidMessage"
    log = outcome_log(caplog)
    assert log.__dict__["account"] == "?"
