"""`python -m deleter_cli dead-letters list|show|replay` against the real Service Bus emulator.

The dead-letter queue holds what the function writes there: failure records built by
`delete_job.records.failure_record` and sent with `shared.servicebus.QueueSender`, a dead letter the
broker itself produced (a message abandoned past its max delivery count, forwarded), and a message that
is neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.servicebus import ServiceBusReceivedMessage

from delete_job.decision import Outcome
from delete_job.records import Received, describe_failure, failure_record
from shared.batch_client import BatchResponse
from shared.batch_errors import parse_batch_error
from shared.servicebus import OutgoingMessage, QueueSender
from shared.settings import ServiceBusConnection
from tests.conftest import ServiceBusHandle
from tests.deleter_cli.test_enqueue import QueueReader, connect, flat, reader, run
from tests.polling import wait_for

NOW = datetime.now(UTC)
CONDITION_NOT_MET = {
    "code": "ConditionNotMet",
    "message": {
        "lang": "en-US",
        "value": "The condition specified using HTTP conditional header(s) is not met.",
    },
    "values": [{"key": "HeaderName", "value": "If-Match"}],
}
FORBIDDEN = {"code": "AuthorizationFailure", "message": {"lang": "en-US", "value": "Not allowed [/]."}}
SERVER_BUSY = {"code": "ServerBusy", "message": {"lang": "en-US", "value": "The server is busy."}}


def answer(status: int, error: dict[str, Any]) -> BatchResponse:
    return BatchResponse(
        status=status,
        request_id="req-" + str(status),
        client_request_id="cid-" + str(status),
        echoed_client_request_id="cid-" + str(status),
        error=parse_batch_error(json.dumps(error).encode()),
        raw_body=None,
        retry_after=None,
        location=None,
    )


def record(
    reason: Outcome,
    message_id: str,
    request: bytes,
    *,
    status: int | None = None,
    error: dict[str, Any] | None = None,
    now: datetime = NOW,
    **received: Any,
) -> OutgoingMessage:
    """A failure record exactly as the processor builds it."""
    delivery = Received(
        message_id=message_id, body=request, content_type="application/json", delivery_count=1, **received
    )
    batch = answer(status, error) if status is not None and error is not None else None
    job_id = json.loads(request).get("jobId") if reason is not Outcome.INVALID_MESSAGE else "x"
    description = (
        describe_failure(reason, job_id, batch, delivery.retry_attempt)
        if batch
        else "The message is not a valid deletion request: unknown field ifmatch."
    )
    return failure_record(
        reason=reason,
        description=description,
        received=delivery,
        now=now,
        job_id=job_id,
        attempts=1 if batch else 0,
        answer=batch,
    )


RECORDS = {
    "m-412:failed": record(
        Outcome.PRECONDITION_FAILED,
        "m-412",
        b'{"jobId": "protected", "ifMatch": "0x8D0000000000000"}',
        status=412,
        error=CONDITION_NOT_MET,
        correlation_id="corr-412",
        application_properties={"team": "data"},
    ),
    "m-403:failed": record(
        Outcome.BATCH_REJECTED,
        "m-403",
        b'{"jobId": "forbidden-1"}',
        status=403,
        error=FORBIDDEN,
        now=NOW - timedelta(days=3),
    ),
    "m-bad:failed": record(Outcome.INVALID_MESSAGE, "m-bad", b'{"jobId": "x", "ifmatch": "0x1"}'),
    "m-503:failed": record(
        Outcome.RETRIES_EXHAUSTED,
        "m-503:retry5",
        b'{"jobId": "busy-1"}',
        status=503,
        error=SERVER_BUSY,
        correlation_id="corr-503",
        retry_attempt=5,
        application_properties={"team": "ml", "retryAttempt": 5, "originalMessageId": "m-503"},
    ),
}
BROKER_ID = "m-stuck"
BROKER_BODY = b'{"jobId": "stuck-1"}'
UNREADABLE_ID = "m-hello"
__all__ = ["reader"]  # the fixture, shared with the enqueue tests


@dataclass(frozen=True)
class DeadLetters:
    """The test's dead-letter queue (the forwarding target) and the deletion queue to replay into."""

    servicebus: ServiceBusHandle
    reader: QueueReader
    queue: str
    deletion_queue: str
    source: str  # the queue the broker dead-lettered from

    def args(self, *more: str) -> list[str]:
        return [*more, "--dead-letter-queue", self.queue, *connect(self.servicebus)]

    def peek(self) -> list[ServiceBusReceivedMessage]:
        return self.reader.peek(self.queue)

    def ids(self) -> set[str]:
        return {str(m.message_id) for m in self.peek()}


def _send(reader: QueueReader, messages: list[tuple[str, OutgoingMessage]]) -> None:
    """Send with the function's own sender, so records are exactly what it writes."""
    sender = QueueSender(ServiceBusConnection(connection_string=reader.servicebus.connection_string))

    async def send_all() -> None:
        for queue, message in messages:
            await sender.send(queue, message)

    try:
        reader.runner.submit(True, send_all).result(timeout=30)
    finally:
        reader.runner.close_later(True, sender.close)


def _abandon_twice(reader: QueueReader, queue: str) -> None:
    """Abandoning past the queue's max delivery count (2): the broker dead-letters the message and
    forwards it to the target queue."""
    with reader.receiver(queue) as receiver:
        for _ in range(2):
            [received] = receiver.receive_messages(max_wait_time=5)
            receiver.abandon_message(received)


@pytest.fixture
def dead_letters(servicebus: ServiceBusHandle, reader: QueueReader) -> DeadLetters:
    """Four failure records, one forwarded broker dead letter and one unreadable message."""
    queues = servicebus.queues
    doomed = OutgoingMessage(
        BROKER_BODY,
        message_id=BROKER_ID,
        content_type="application/json",
        correlation_id="corr-stuck",
        application_properties={"team": "ops", "retryAttempt": 2, "originalMessageId": "m-first"},
    )
    unreadable = OutgoingMessage(b"\xffhello [bold]", message_id=UNREADABLE_ID)
    _send(
        reader,
        [
            (queues.forwarding, doomed),
            *((queues.forward_target, r) for r in RECORDS.values()),
            (queues.forward_target, unreadable),
        ],
    )
    _abandon_twice(reader, queues.forwarding)
    handle = DeadLetters(servicebus, reader, queues.forward_target, queues.queue, queues.forwarding)
    assert wait_for(lambda: handle.ids() == {*RECORDS, BROKER_ID, UNREADABLE_ID}, "the dead letters", 10)
    return handle


def listed(dead_letters: DeadLetters, *filters: str) -> list[dict[str, Any]]:
    result = run("dead-letters", "list", "--json", *dead_letters.args(*filters))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_shows_every_kind_and_removes_nothing(dead_letters: DeadLetters) -> None:
    """The table names each record's reason, job, status, code and id; the queue is unchanged."""
    result = run("dead-letters", "list", *dead_letters.args())
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "6 dead letters on queue" in text
    for expected in (
        "PreconditionFailed", "protected", "412", "ConditionNotMet", "m-412:failed",
        "BatchRejected", "forbidden-1", "403", "AuthorizationFailure",
        "InvalidMessage", "RetriesExhausted", "ServerBusy", "busy-1",
        "MaxDeliveryCountExceeded (broker)", "stuck-1", BROKER_ID,
        "Unreadable", UNREADABLE_ID,
    ):  # fmt: skip
        assert expected in text, expected
    assert "Batch did not delete job protected" in text  # the description, cut to one line
    assert "Traceback" not in result.output
    before = [(m.sequence_number, m.delivery_count) for m in dead_letters.peek()]
    assert len(listed(dead_letters)) == 6
    assert [(m.sequence_number, m.delivery_count) for m in dead_letters.peek()] == before


def test_list_json_describes_each_kind(dead_letters: DeadLetters) -> None:
    """--json: one object a line, with the record's fields, the broker's reason and source."""
    by_id = {line["messageId"]: line for line in listed(dead_letters)}
    precondition = by_id["m-412:failed"]
    assert {k: precondition[k] for k in ("kind", "reason", "jobId", "httpStatus", "batchErrorCode")} == {
        "kind": "failureRecord",
        "reason": "PreconditionFailed",
        "jobId": "protected",
        "httpStatus": 412,
        "batchErrorCode": "ConditionNotMet",
    }
    assert datetime.fromisoformat(precondition["failedAt"]) == NOW.replace(
        microsecond=NOW.microsecond // 1000 * 1000
    )
    assert precondition["replayable"] is True
    broker = by_id[BROKER_ID]
    assert (broker["kind"], broker["reason"], broker["jobId"]) == (
        "brokerDeadLetter",
        "MaxDeliveryCountExceeded",
        "stuck-1",
    )
    assert broker["source"] == dead_letters.source
    assert dead_letters.source in broker["description"]
    assert broker["replayable"] is True
    unreadable = by_id[UNREADABLE_ID]
    assert (unreadable["kind"], unreadable["reason"], unreadable["replayable"]) == (
        "unreadable",
        "Unreadable",
        False,
    )
    assert by_id["m-bad:failed"]["replayable"] is False
    assert "invalid" in by_id["m-bad:failed"]["notReplayableBecause"]


def test_list_filters(dead_letters: DeadLetters) -> None:
    """--reason, --code (a Batch code or an HTTP status), --job, --since and --limit select records."""
    cases: list[tuple[list[str], set[str]]] = [
        (["--reason", "PreconditionFailed"], {"m-412:failed"}),
        (["--reason", "maxdeliverycountexceeded", "--reason", "Unreadable"], {BROKER_ID, UNREADABLE_ID}),
        (["--code", "ConditionNotMet"], {"m-412:failed"}),
        (["--code", "403"], {"m-403:failed"}),
        (["--job", "BUSY-1"], {"m-503:failed"}),
        (["--job", "stuck-1"], {BROKER_ID}),
        (["--since", "1d"], {*RECORDS, BROKER_ID, UNREADABLE_ID} - {"m-403:failed"}),
        (["--since", (NOW - timedelta(days=4)).date().isoformat()], {*RECORDS, BROKER_ID, UNREADABLE_ID}),
        (["--since", "1d", "--reason", "BatchRejected"], set()),
    ]
    for filters, expected in cases:
        assert {line["messageId"] for line in listed(dead_letters, *filters)} == expected, filters
    assert len(listed(dead_letters, "--limit", "2")) == 2
    bad = run("dead-letters", "list", *dead_letters.args("--since", "yesterday"))
    assert bad.exit_code == 2
    assert "neither an ISO 8601 date-time" in flat(bad.stderr)


def test_show_a_failure_record_in_full(dead_letters: DeadLetters) -> None:
    """Reason, description, Batch's error, request ids, attempts and the original message."""
    result = run("dead-letters", "show", "m-412:failed", *dead_letters.args())
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    for expected in (
        "PreconditionFailed",
        "replay with updated preconditions",
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
        "HeaderName If-Match",
        "req-412",
        "cid-412",
        "attempts 1",
        "messageId m-412",
        "correlationId corr-412",
        "property team data",
        '"ifMatch": "0x8D0000000000000"',
        "replayable yes",
    ):
        assert expected in text, expected
    by_number = min(m.sequence_number or 0 for m in dead_letters.peek() if m.message_id == BROKER_ID)
    broker = run("dead-letters", "show", str(by_number), *dead_letters.args())
    assert broker.exit_code == 0, broker.output
    assert "MaxDeliveryCountExceeded" in broker.stdout
    assert f"dead-lettered from {dead_letters.source}" in flat(broker.stdout)
    assert '"jobId": "stuck-1"' in broker.stdout
    unreadable = run("dead-letters", "show", UNREADABLE_ID, *dead_letters.args())
    assert unreadable.exit_code == 0, unreadable.output
    assert "Unreadable" in unreadable.stdout
    assert "bodyBase64" in unreadable.stdout


def test_show_json_prints_the_raw_record(dead_letters: DeadLetters) -> None:
    """--json: the message as it is (properties, and the record's body as JSON)."""
    result = run("dead-letters", "show", "m-503:failed", "--json", *dead_letters.args())
    assert result.exit_code == 0, result.output
    raw = json.loads(result.stdout)
    assert raw["body"] == json.loads(RECORDS["m-503:failed"].body)
    assert raw["subject"] == "RetriesExhausted"
    assert raw["correlationId"] == "corr-503"
    assert raw["applicationProperties"]["reason"] == "RetriesExhausted"
    assert raw["applicationProperties"]["retryAttempt"] == 5
    missing = run("dead-letters", "show", "no-such-id", *dead_letters.args())
    assert missing.exit_code == 1
    assert "no message 'no-such-id'" in missing.stderr
