"""What reaches the queues when a message does not end in a deletion: failure records (contract
section 5) and delayed-retry copies (section 4), and how over-long message ids are shortened."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from delete_job.decision import Outcome
from delete_job.records import Received, describe_failure, failure_record, redact, retry_copy
from delete_job.request import InvalidMessageError, parse_request
from shared.batch_client import BatchResponse
from shared.batch_errors import BatchTransportError, parse_batch_error
from shared.servicebus import MAX_MESSAGE_ID, OutgoingMessage, shorten_message_id

NOW = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
ENQUEUED = datetime(2026, 11, 28, 9, 59, 58, 500000, tzinfo=UTC)
REQUEST = b'{"jobId": "nightly-42", "ifMatch": "\\"0x8DB1\\""}'
JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL2JhdGNoIn0.c2lnbmF0dXJlLXZhbHVl"
KIB = 1024


def received(**overrides: Any) -> Received:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "body": REQUEST,
        "correlation_id": "corr-1",
        "content_type": "application/json",
        "subject": "delete",
        "enqueued_time_utc": ENQUEUED,
        "delivery_count": 1,
        "application_properties": {"workflow": "42"},
    }
    return Received(**(fields | overrides))


def answer(status: int, error: dict[str, Any] | None = None, **overrides: Any) -> BatchResponse:
    fields: dict[str, Any] = {
        "status": status,
        "request_id": "req-1",
        "client_request_id": "cid-1",
        "echoed_client_request_id": "cid-1",
        "error": parse_batch_error(json.dumps(error).encode()) if error else None,
        "raw_body": None,
        "retry_after": None,
        "location": None,
    }
    return BatchResponse(**(fields | overrides))


CONDITION_NOT_MET = {
    "code": "ConditionNotMet",
    "message": {"lang": "en-US", "value": "The condition specified was not met.\nRequestId:req-1"},
    "values": [{"key": "HeaderName", "value": "If-Match"}],
}


def record(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "reason": Outcome.PRECONDITION_FAILED,
        "description": "The job changed.",
        "received": received(),
        "now": NOW,
        "job_id": "nightly-42",
        "attempts": 1,
        "answer": answer(412, CONDITION_NOT_MET),
    }
    return failure_record(**(fields | overrides))


def content(message: OutgoingMessage) -> dict[str, Any]:
    data = json.loads(message.body.decode("utf-8"))
    assert isinstance(data, dict)
    return data


def test_record_envelope() -> None:
    """JSON, the reason as subject, the original's correlation id (else its message id), id `<id>:failed`."""
    message = record()
    assert message.content_type == "application/json"
    assert message.subject == "PreconditionFailed"
    assert message.correlation_id == "corr-1"
    assert message.message_id == "m-1:failed"
    assert record(now=NOW + timedelta(seconds=5)).message_id == "m-1:failed"  # deterministic
    assert record(received=received(correlation_id=None)).correlation_id == "m-1"


def test_record_body_holds_exactly_the_documented_fields() -> None:
    """The body is the contract's object: every field, nothing else, Batch's error as Batch sent it."""
    assert content(record(account="eu", received=received(retry_attempt=2))) == {
        "reason": "PreconditionFailed",
        "description": "The job changed.",
        "jobId": "nightly-42",
        "account": "eu",
        "attempts": 1,
        "retryAttempt": 2,
        "failedAt": "2026-11-28T10:00:00.123Z",
        "httpStatus": 412,
        "batchError": CONDITION_NOT_MET,
        "requestId": "req-1",
        "clientRequestId": "cid-1",
        "originalMessage": {
            "messageId": "m-1",
            "correlationId": "corr-1",
            "contentType": "application/json",
            "enqueuedTimeUtc": "2026-11-28T09:59:58.500Z",
            "deliveryCount": 1,
            "applicationProperties": {"workflow": "42"},
            "body": REQUEST.decode(),
        },
    }


def test_record_application_properties() -> None:
    """The properties name reason, job, account, status, Batch code, first message and retry count."""
    props = record(
        account="eu",
        received=received(
            message_id="first:retry2",
            retry_attempt=2,
            application_properties={"originalMessageId": "first", "retryAttempt": 2},
        ),
    ).application_properties
    assert props == {
        "reason": "PreconditionFailed",
        "jobId": "nightly-42",
        "account": "eu",
        "httpStatus": 412,
        "batchErrorCode": "ConditionNotMet",
        "originalMessageId": "first",
        "retryAttempt": 2,
    }


def test_absent_values_are_omitted_from_the_properties() -> None:
    """An invalid message with no job, account or Batch answer has none of those properties."""
    message = record(reason=Outcome.INVALID_MESSAGE, job_id=None, attempts=0, answer=None)
    assert message.application_properties == {
        "reason": "InvalidMessage",
        "originalMessageId": "m-1",
        "retryAttempt": 0,
    }


def test_record_without_batch_error_body() -> None:
    """A 503 with no body gives a null batchError; no answer at all gives a null status and request id."""
    assert content(record(reason=Outcome.RETRIES_EXHAUSTED, answer=answer(503)))["batchError"] is None
    data = content(
        record(
            reason=Outcome.RETRIES_EXHAUSTED,
            answer=BatchTransportError("timeout", "read timed out"),
            client_request_id="cid-9",
        )
    )
    assert (data["httpStatus"], data["batchError"], data["requestId"]) == (None, None, None)
    assert data["clientRequestId"] == "cid-9"


def test_failed_at_is_utc_with_milliseconds() -> None:
    """failedAt is ISO 8601 in UTC with milliseconds and a Z, whatever offset the clock gave."""
    now = datetime(2026, 11, 28, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert content(record(now=now))["failedAt"] == "2026-11-28T10:00:00.000Z"


def test_non_utf8_body_is_kept_as_base64() -> None:
    """A body that is not UTF-8 appears once, as bodyBase64 that decodes to the exact bytes."""
    raw = b"\xff\xfe\x00binary"
    original = content(record(received=received(body=raw)))["originalMessage"]
    assert "body" not in original
    assert base64.b64decode(original["bodyBase64"]) == raw


@pytest.mark.parametrize(("size", "cut"), [(0, False), (64 * KIB, False), (100 * KIB, True)])
def test_bodies_over_64_kib_are_cut(size: int, cut: bool) -> None:
    """Bodies up to 64 KiB are whole; a larger one is cut to 64 KiB, marked truncated, with its size."""
    original = content(record(received=received(body=b"a" * size)))["originalMessage"]
    assert original["body"] == "a" * min(size, 64 * KIB)
    assert original.get("bodyTruncated") is (True if cut else None)
    assert original.get("bodySize") == (size if cut else None)


def test_a_cut_utf8_body_is_still_text() -> None:
    """A UTF-8 body cut at 64 KiB is still shown as text, even when the cut falls inside a character."""
    original = content(record(received=received(body="€".encode() * 30_000)))["originalMessage"]
    assert "body" in original, "a UTF-8 body cut mid-character became bodyBase64 instead of body"
    assert original["body"].startswith("€" * 21_000)


@pytest.mark.parametrize(
    "poison",
    [
        b'{"jobId": "' + b"x" * 256_000 + b'"}',
        bytes(range(256)) * 1000,
        b'"' * 256_000,
        b"\x01" * 256_000,
    ],
    ids=["long JSON", "binary", "quotes", "control characters"],
)
def test_record_for_a_256_kb_poison_body_fits_the_queue(poison: bytes) -> None:
    """Whatever a 256 KB body holds, its record stays well under Service Bus's 256 KB message limit."""
    message = record(reason=Outcome.INVALID_MESSAGE, received=received(body=poison), answer=None)
    size = len(message.body)
    assert size < 192 * KIB, f"the record is {size} bytes: Service Bus refuses it, so it is never sent"


def test_retry_copy_record_names_the_copy_and_the_first_message() -> None:
    """For a retry copy, originalMessage describes the copy; originalMessageId names the first message."""
    copy = received(
        message_id="first:retry1", retry_attempt=1, application_properties={"originalMessageId": "first"}
    )
    message = record(received=copy)
    assert content(message)["originalMessage"]["messageId"] == "first:retry1"
    assert message.application_properties["originalMessageId"] == "first"
    assert message.message_id == "first:failed"  # one record per request (contract section 5)


def test_record_never_holds_a_token_from_batch_error_text() -> None:
    """A bearer token or JWT echoed in Batch's error body appears nowhere in the record."""
    leaky = {
        "code": "AuthenticationFailed",
        "message": {"lang": "en-US", "value": f"Server failed to authenticate: Bearer {JWT}"},
        "values": [{"key": "AuthenticationErrorDetail", "value": f"token {JWT} is expired"}],
    }
    reply = answer(401, leaky)
    message = record(
        reason=Outcome.BATCH_REJECTED,
        answer=reply,
        description=describe_failure(Outcome.BATCH_REJECTED, "nightly-42", reply),
    )
    text = message.body.decode() + json.dumps(message.application_properties)
    assert JWT not in text, "the token Batch echoed is copied verbatim into batchError"
    assert "eyJ" not in text


def test_record_never_holds_a_token_from_a_raw_body() -> None:
    """A body that is not Batch's JSON is quoted in the description, with any bearer token redacted."""
    reply = answer(502, raw_body=f"<html>upstream said Authorization: Bearer {JWT}</html>")
    message = record(
        reason=Outcome.BATCH_REJECTED,
        answer=reply,
        description=describe_failure(Outcome.BATCH_REJECTED, "nightly-42", reply),
    )
    assert JWT not in message.body.decode()
    assert "upstream said" in content(message)["description"]


@pytest.mark.parametrize(
    "text",
    [f"Bearer {JWT}", f"bearer   {JWT}", "Authorization: Bearer opaque-token.value_123", JWT, f"token={JWT}"],
)
def test_redact_removes_tokens(text: str) -> None:
    """Bearer credentials and JWTs are replaced, whatever their case and spacing; other text is kept."""
    cleaned = redact(f"{text} The specified job does not exist.")
    assert "REDACTED" in cleaned
    assert JWT not in cleaned
    assert "opaque-token" not in cleaned
    assert cleaned.endswith(" The specified job does not exist.")


def test_record_description_is_one_line() -> None:
    """However many lines the description had, the record's description is one line."""
    data = content(record(description="first line\nsecond line\r\n\tthird"))
    assert data["description"] == "first line second line third"


@pytest.mark.parametrize(
    "reply",
    [
        answer(404, {"code": "PoolNotFound", "message": {"lang": "en-US", "value": "No pool.\nRequestId:x"}}),
        answer(502, raw_body="<html>\n<body>Bad gateway</body>\n</html>"),
        answer(500),
        BatchTransportError("connection", "connection refused"),
    ],
    ids=["Batch error", "raw body", "no body", "no answer"],
)
def test_describe_failure_is_one_line(reply: BatchResponse | BatchTransportError) -> None:
    """The description a person reads is a single line."""
    text = describe_failure(Outcome.BATCH_REJECTED, "nightly-42", reply)
    assert "\n" not in text
    assert "\r" not in text


def test_describe_failure_names_code_job_and_details() -> None:
    """The description names the job, Batch's status, code, message and details."""
    text = describe_failure(Outcome.PRECONDITION_FAILED, "nightly-42", answer(412, CONDITION_NOT_MET))
    for part in ("nightly-42", "412", "ConditionNotMet", "The condition specified was not met", "If-Match"):
        assert part in text
    assert "ETag" in text


@pytest.mark.parametrize("status", [401, 403])
def test_describe_failure_for_authorization_names_the_role(status: int) -> None:
    """A 401 or 403 tells the operator to grant the managed identity the Batch Job Submitter role."""
    reply = answer(status, {"code": "AuthorizationFailure", "message": {"lang": "en-US", "value": "No."}})
    text = describe_failure(Outcome.BATCH_REJECTED, "nightly-42", reply)
    assert "Batch Job Submitter" in text
    assert "AuthorizationFailure" in text


def test_describe_failure_for_a_redirect_names_the_location() -> None:
    """A redirect is reported with where it pointed, and that the token was not sent there."""
    reply = answer(307, location="https://other.westeurope.batch.azure.com/jobs/nightly-42")
    text = describe_failure(Outcome.BATCH_REJECTED, "nightly-42", reply)
    assert "https://other.westeurope.batch.azure.com/jobs/nightly-42" in text
    assert "BATCH_ENDPOINT" in text


def test_describe_failure_after_retries_names_the_count_and_last_answer() -> None:
    """RetriesExhausted says how many delayed retries were made and what Batch last said."""
    no_answer = BatchTransportError("timeout", "read")
    text = describe_failure(Outcome.RETRIES_EXHAUSTED, "nightly-42", no_answer, 5)
    assert "5 delayed retries" in text
    assert "timeout" in text


@pytest.mark.parametrize("raw", [b'{"jobId": "\\ud800"}', b'{"jobId": "a\\n", "force": 1}', b"[]", b"\xff"])
def test_invalid_message_record_can_always_be_built(raw: bytes) -> None:
    """Whatever parse_request refuses, its InvalidMessage record can be sent as UTF-8 JSON."""
    with pytest.raises(InvalidMessageError) as refused:
        parse_request(raw)
    try:
        message = record(
            reason=Outcome.INVALID_MESSAGE,
            description=refused.value.description,
            received=received(body=raw),
            job_id=refused.value.job_id,
            answer=None,
        )
    except UnicodeError as exc:
        pytest.fail(f"no InvalidMessage record for {raw!r}: {exc}")
    assert content(message)["reason"] == "InvalidMessage"


def test_retry_copy() -> None:
    """Same body and headers, the original's properties plus retryAttempt and originalMessageId."""
    copy = retry_copy(received=received(), delay=300, now=NOW)
    assert copy.body == REQUEST
    assert (copy.content_type, copy.correlation_id, copy.subject) == ("application/json", "corr-1", "delete")
    assert copy.application_properties == {"workflow": "42", "retryAttempt": 1, "originalMessageId": "m-1"}
    assert copy.message_id == "m-1:retry1"
    assert copy.scheduled_enqueue_time_utc == NOW + timedelta(seconds=300)


def test_retries_of_retries_name_the_first_message() -> None:
    """Across several delayed retries, every copy counts up and names the first message."""
    delivery = received(message_id="first")
    for n in (1, 2, 3):
        copy = retry_copy(received=delivery, delay=60, now=NOW)
        assert copy.message_id == f"first:retry{n}"
        assert copy.application_properties["originalMessageId"] == "first"
        assert copy.application_properties["retryAttempt"] == n
        delivery = received(
            message_id=copy.message_id, application_properties=copy.application_properties, retry_attempt=n
        )


def test_retry_copy_keeps_every_original_property() -> None:
    """Every application property of the original travels with the copy, whatever its type."""
    properties: dict[str, Any] = {"text": "a", "count": 3, "flag": True, "ratio": 1.5}
    copy = retry_copy(received=received(application_properties=properties), delay=60, now=NOW)
    missing = {k: v for k, v in properties.items() if copy.application_properties.get(k) != v}
    assert missing == {}, f"retry copy dropped or changed the original's properties {missing}"


LONG = "p" * 200


@pytest.mark.parametrize("message_id", ["", "m-1", "x" * MAX_MESSAGE_ID])
def test_ids_up_to_128_characters_are_kept(message_id: str) -> None:
    """An id Service Bus accepts is sent unchanged."""
    assert shorten_message_id(message_id) == message_id


@pytest.mark.parametrize("message_id", ["x" * 129, LONG + ":failed", LONG + ":retry1", "é" * 300])
def test_long_ids_are_shortened_to_a_prefix_and_a_hash(message_id: str) -> None:
    """An over-long id becomes at most 128 characters, starting with the id's own beginning."""
    short = shorten_message_id(message_id)
    assert len(short) <= MAX_MESSAGE_ID
    assert short[:80] == message_id[:80]
    assert shorten_message_id(message_id) == short


def test_different_long_ids_stay_different() -> None:
    """Ids sharing their first 128 characters still shorten to different ids (retry 1 vs 2, record)."""
    ids = [LONG + ":retry1", LONG + ":retry2", LONG + ":failed", LONG + ":retry1:failed"]
    assert len({shorten_message_id(i) for i in ids}) == len(ids)


def test_retry_copy_of_a_long_id_is_deterministic() -> None:
    """Two copies made for the same delivery get the same short id, so duplicate detection works."""
    first = retry_copy(received=received(message_id=LONG), delay=60, now=NOW)
    second = retry_copy(received=received(message_id=LONG), delay=60, now=NOW + timedelta(seconds=1))
    assert shorten_message_id(first.message_id) == shorten_message_id(second.message_id)
