"""The tool's pure parts, without Service Bus: reading dead letters, filters, replay copies, JSON lines,
settings and secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusConnectionError,
    ServiceBusError,
)

from delete_job.decision import Outcome
from delete_job.records import Received, failure_record
from deleter_cli._changes import Changes
from deleter_cli._config import Connection, Queue, Sources
from deleter_cli._deadletter import DeadLetter, Envelope, Kind, NotReplayableError, read, replay_copy
from deleter_cli._enqueue import Line, read_lines, request_body, validate
from deleter_cli._errors import CliError, describe_service_error
from deleter_cli._filters import Filters, parse_since

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def record_envelope(body: bytes = b'{"jobId": "j-1"}', number: int = 7, **received: Any) -> Envelope:
    """A failure record as the function writes it, as the tool reads it back."""
    fields: dict[str, Any] = {"message_id": "m-1", "body": body, "correlation_id": "c-1"} | received
    message = failure_record(
        reason=Outcome.INVALID_MESSAGE, description="bad", received=Received(**fields), now=NOW, job_id="j-1"
    )
    return Envelope(
        sequence_number=number,
        message_id=message.message_id,
        body=message.body,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        subject=message.subject,
        application_properties=dict(message.application_properties),
    )


def broker_envelope(body: bytes | None = b'{"jobId": "stuck-1"}') -> Envelope:
    properties = {
        "DeadLetterReason": "MaxDeliveryCountExceeded",
        "DeadLetterErrorDescription": "too many deliveries",
        "DeadLetterSource": "deletions",
        "retryAttempt": 2,
        "originalMessageId": "first",
        "team": "ops",
    }
    return Envelope(
        sequence_number=3,
        message_id="m-b",
        body=body,
        correlation_id="c-b",
        enqueued_time_utc=NOW,
        application_properties=properties,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("1d12h", NOW - timedelta(days=1, hours=12)),
        ("1W", NOW - timedelta(weeks=1)),
        ("2026-11-27T08:00:00Z", datetime(2026, 11, 27, 8, tzinfo=UTC)),
        ("2026-11-27T09:00:00+01:00", datetime(2026, 11, 27, 8, tzinfo=UTC)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
    ],
)
def test_since_takes_a_moment_or_a_duration(text: str, expected: datetime) -> None:
    """--since: ISO 8601 (UTC without an offset) or a duration back from now."""
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h30", "-2h", "", "2026-13-01"])
def test_since_refuses_anything_else(text: str) -> None:
    """Anything else is refused with what is accepted."""
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since(text, NOW)


def test_a_failure_record_is_read_from_its_body() -> None:
    """Reason, job, time and description come from the record the function wrote."""
    dead_letter = read(record_envelope())
    assert (dead_letter.kind, dead_letter.reason, dead_letter.job_id) == (
        Kind.FAILURE_RECORD,
        "InvalidMessage",
        "j-1",
    )
    assert dead_letter.failed_at == NOW
    assert dead_letter.description == "bad"
    assert dead_letter.envelope.ref == "m-1:failed"


def test_a_broker_dead_letter_is_read_from_its_properties() -> None:
    """The broker's reason and source; the job from the request itself."""
    dead_letter = read(broker_envelope())
    assert (dead_letter.kind, dead_letter.reason, dead_letter.source) == (
        Kind.BROKER,
        "MaxDeliveryCountExceeded",
        "deletions",
    )
    assert dead_letter.job_id == "stuck-1"
    assert dead_letter.failed_at == NOW
    assert dead_letter.description == "too many deliveries (dead-lettered by the broker on deletions)"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"hello", "'hello'"),
        (b'{"jobId": "j-1"}', "jobId"),
        (b'{"reason": "x", "originalMessage": "not an object"}', "originalMessage"),
        (b"\xff\xfe", "2 bytes that are not UTF-8"),
        (b"[1, 2]", "[1, 2]"),
        (None, "not binary data"),
    ],
)
def test_anything_else_is_unreadable(body: bytes | None, says: str) -> None:
    """Neither a record nor a broker dead letter: `Unreadable`, described, never a crash."""
    dead_letter = read(Envelope(sequence_number=1, message_id="x", body=body))
    assert (dead_letter.kind, dead_letter.reason) == (Kind.UNREADABLE, "Unreadable")
    assert says in dead_letter.description
    with pytest.raises(NotReplayableError, match="no request to replay"):
        replay_copy(dead_letter)


def test_a_malformed_record_is_read_without_crashing() -> None:
    """Fields of the wrong type are left empty; the enqueued time stands in for failedAt."""
    body = {
        "reason": "Odd",
        "originalMessage": {},
        "batchError": "x",
        "failedAt": "soon",
        "httpStatus": "412",
    }
    envelope = Envelope(
        sequence_number=1, message_id="x", body=json.dumps(body).encode(), enqueued_time_utc=NOW
    )
    dead_letter = read(envelope)
    assert (dead_letter.reason, dead_letter.http_status, dead_letter.batch_error_code) == ("Odd", None, None)
    assert dead_letter.failed_at == NOW
    with pytest.raises(NotReplayableError, match="no original body"):
        replay_copy(dead_letter)


def test_replay_copy_of_a_record_starts_afresh() -> None:
    """The original body and correlation id, its properties without the retry ones, `replayOf`."""
    envelope = record_envelope(
        application_properties={"team": "ml", "retryAttempt": 3, "originalMessageId": "m-0", "none": None},
        retry_attempt=3,
    )
    copy = replay_copy(read(envelope), new_id=lambda: "new-1", named=True)  # an InvalidMessage record
    assert (copy.message_id, copy.body, copy.correlation_id) == ("new-1", b'{"jobId": "j-1"}', "c-1")
    assert copy.application_properties == {"team": "ml", "replayOf": "m-0:failed"}
    assert copy.content_type == "application/json"


def test_replay_copy_of_a_broker_dead_letter_drops_the_broker_properties() -> None:
    """The message itself goes back, without DeadLetter* and retry properties."""
    copy = replay_copy(read(broker_envelope()), new_id=lambda: "new-2")
    assert copy.body == b'{"jobId": "stuck-1"}'
    assert copy.application_properties == {"team": "ops", "replayOf": "m-b"}
    assert copy.correlation_id == "c-b"


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b'{"jobId": "j-1", "reason": "' + b"x" * (70 * 1024) + b'"}', "cut at 64 KiB"),
        (b"\xff" + b'{"jobId": "j-1"}', "bodyBase64"),
        (b'{"jobId": "j 1"}', "the original request is invalid"),
    ],
)
def test_replay_copy_refuses_what_cannot_be_rebuilt(body: bytes, refusal: str) -> None:
    """A cut body, a binary body, an invalid request: refused with what to do instead."""
    with pytest.raises(NotReplayableError, match=refusal) as caught:
        replay_copy(read(record_envelope(body)))
    assert "enqueue" in str(caught.value)


def test_filters_match_case_insensitively_and_combine() -> None:
    """Repeated values: any matches; different options: all must; --code also takes a status."""
    record = read(record_envelope())
    broker = read(broker_envelope())

    def matching(**filters: Any) -> list[DeadLetter]:
        return [d for d in (record, broker) if Filters.create(**filters).matches(d)]

    assert matching(reasons=["invalidmessage"]) == [record]
    assert matching(reasons=["InvalidMessage", "MaxDeliveryCountExceeded"]) == [record, broker]
    assert matching(reasons=["InvalidMessage"], jobs=["STUCK-1"]) == []
    assert matching(jobs=["stuck-1"]) == [broker]
    assert matching(codes=["412"]) == []
    assert matching(ids=["#3"]) == matching(ids=["3"]) == matching(ids=["m-b"]) == [broker]
    assert matching(since=NOW + timedelta(seconds=1)) == []
    assert matching(since=NOW.astimezone(timezone(timedelta(hours=2)))) == [record, broker]


def test_json_lines_keep_each_line_as_written() -> None:
    """Blank lines are skipped, line ends and a file's byte order mark dropped, numbers kept."""
    data = b'\xef\xbb\xbf{"jobId": "a"}\r\n\n  \n{"jobId":"b"}  \n{"jobId": 1}'
    lines = read_lines(data)
    assert lines == [Line(1, b'{"jobId": "a"}'), Line(4, b'{"jobId":"b"}'), Line(5, b'{"jobId": 1}')]
    valid, rejected = validate(lines)
    assert [line.number for line in valid] == [1, 4]
    assert [(r.number, "$.jobId" in r.problem) for r in rejected] == [(5, True)]


def test_request_body_leaves_out_options_not_given() -> None:
    """Compact JSON of the given options only; False and 0 are given values."""
    assert request_body({"jobId": "j", "force": False, "timeOut": None, "reason": "é"}) == (
        '{"jobId":"j","force":false,"reason":"é"}'.encode()
    )


def test_connection_strings_are_never_repeated() -> None:
    """Errors name where the value came from; redact() removes the key from any text."""
    connection = Connection.from_connection_string(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s3cr3t=", "--cs"
    )
    assert connection.namespace == "ns.servicebus.windows.net"
    assert "s3cr3t" not in repr(connection)
    assert (
        connection.redact("failed with SharedAccessKey=s3cr3t= on ns")
        == "failed with SharedAccessKey=*** on ns"
    )
    with pytest.raises(CliError) as caught:
        Connection.from_connection_string("Endpoint=https://x;SharedAccessKey=s3cr3t", "ServiceBusConnection")
    assert "s3cr3t" not in caught.value.message
    assert caught.value.message.startswith("ServiceBusConnection is not a Service Bus connection string")


def test_empty_environment_values_count_as_unset(tmp_path: Path) -> None:
    """An empty variable does not hide the local settings file (the sample sets some to "")."""
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"DELETION_QUEUE": "from-file"}}))
    setting = Sources.load({"DELETION_QUEUE": " "}, tmp_path).get("DELETION_QUEUE")
    assert setting is not None
    assert (setting.value, setting.source) == ("from-file", "DELETION_QUEUE in local.settings.json")
    (tmp_path / "local.settings.json").write_text("{not json")
    with pytest.raises(CliError, match="not a readable local settings file"):
        Sources.load({}, tmp_path)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (MessagingEntityNotFoundError(message="gone"), "queue 'q' (from --queue) does not exist in ns:5671"),
        (ServiceBusAuthorizationError(message="no"), "Data Sender role"),
        (ServiceBusAuthenticationError(message="bad token"), "check the connection string's key"),
        (ServiceBusConnectionError(message="refused"), "could not reach Service Bus at ns:5671 (from --cs)"),
        (ServiceBusError("odd, key=s3cr3t="), "Service Bus failed on queue 'q' (from --queue): odd, key=***"),
    ],
)
def test_service_errors_say_what_to_do_without_the_key(error: Exception, says: str) -> None:
    """Each Service Bus failure names the queue or setting and what to check; the key is redacted."""
    connection = Connection.from_connection_string("Endpoint=sb://ns:5671;SharedAccessKey=s3cr3t=", "--cs")
    message = describe_service_error(error, connection, Queue("q", "--queue"))
    assert says in message
    assert "s3cr3t" not in message


def test_a_failed_sign_in_suggests_az_login() -> None:
    """With --namespace the operator's own credential is used: a failure says how to sign in."""
    connection = Connection.from_namespace("https://prod.servicebus.windows.net/", "--namespace")
    assert connection.namespace == "prod.servicebus.windows.net"
    message = describe_service_error(ClientAuthenticationError("no credential"), connection, None)
    assert "could not sign in to prod.servicebus.windows.net (from --namespace)" in message
    assert "az login" in message


def test_a_request_refused_as_it_is_is_replayed_only_when_named_or_changed() -> None:
    """An InvalidMessage record is skipped by a filter or --all; named by --id, or changed, it goes."""
    dead_letter = read(record_envelope())  # reason InvalidMessage, a body the model accepts
    with pytest.raises(NotReplayableError, match="InvalidMessage: the request was refused as it is"):
        replay_copy(dead_letter)
    assert replay_copy(dead_letter, named=True).body == b'{"jobId": "j-1"}'
    changed = replay_copy(dead_letter, changes=Changes(fields={"force": True}))
    assert json.loads(changed.body) == {"jobId": "j-1", "force": True}
    replaced = replay_copy(dead_letter, changes=Changes(body=b'{"jobId": "j-2"}', drop_preconditions=True))
    assert json.loads(replaced.body) == {"jobId": "j-2"}
