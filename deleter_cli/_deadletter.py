"""What a message on the dead-letter queue says, and the request a replay would send (pure: no I/O).

Three kinds arrive there (contract sections 3 and 5):
- our failure records: a JSON body with `reason`, `description`, ..., `originalMessage`;
- the broker's own dead letters, forwarded by `ForwardDeadLetteredMessagesTo`: the original message,
  with `DeadLetterReason`, `DeadLetterErrorDescription` and `DeadLetterSource` application properties;
- anything else, shown as `Unreadable` (and never replayed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from delete_job.request import InvalidMessageError, parse_request
from deleter_cli._changes import CANNOT_SUCCEED_UNCHANGED, ChangeError, Changes, apply

if TYPE_CHECKING:
    from azure.servicebus import ServiceBusReceivedMessage

__all__ = ["DeadLetter", "Envelope", "Kind", "NotReplayableError", "ReplayCopy", "read", "replay_copy"]

BROKER_PROPERTIES = ("DeadLetterReason", "DeadLetterErrorDescription", "DeadLetterSource")
# A replay starts fresh: the delayed-retry count (contract section 4) does not carry over.
RETRY_PROPERTIES = ("retryAttempt", "originalMessageId")
REPLAY_OF = "replayOf"
UNREADABLE = "Unreadable"


class Kind(StrEnum):
    FAILURE_RECORD = "failureRecord"
    BROKER = "brokerDeadLetter"
    UNREADABLE = "unreadable"


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


@dataclass(frozen=True)
class Envelope:
    """A Service Bus message as read from the queue. `body` is None when it is not binary data."""

    sequence_number: int
    message_id: str | None
    body: bytes | None
    correlation_id: str | None = None
    content_type: str | None = None
    subject: str | None = None
    enqueued_time_utc: datetime | None = None
    delivery_count: int | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: ServiceBusReceivedMessage) -> Envelope:
        return cls(
            sequence_number=message.sequence_number or 0,
            message_id=message.message_id,
            body=_body_bytes(message),
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            subject=message.subject,
            enqueued_time_utc=message.enqueued_time_utc,
            delivery_count=message.delivery_count,
            application_properties={
                str(_text(key)): _text(value) for key, value in (message.application_properties or {}).items()
            },
        )

    @property
    def ref(self) -> str:
        """The message id, or the sequence number when there is none."""
        return self.message_id or f"#{self.sequence_number}"


def _body_bytes(message: ServiceBusReceivedMessage) -> bytes | None:
    from azure.servicebus.amqp import AmqpMessageBodyType  # noqa: PLC0415 - with the SDK's message only

    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    body = message.body  # an AMQP value (another SDK's string, say) or sequence
    if isinstance(body, bytes):
        return body
    return body.encode("utf-8") if isinstance(body, str) else None


@dataclass(frozen=True)
class DeadLetter:
    """One message on the dead-letter queue, read as a failure record, a broker dead letter or neither."""

    envelope: Envelope
    kind: Kind
    reason: str
    description: str
    job_id: str | None = None
    account: str | None = None
    http_status: int | None = None
    batch_error_code: str | None = None
    failed_at: datetime | None = None
    source: str | None = None  # the queue the broker dead-lettered it from
    record: dict[str, Any] | None = None  # a failure record's body


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read(envelope: Envelope) -> DeadLetter:
    """Classify and summarise one message; never raises."""
    properties = envelope.application_properties
    broker_reason = properties.get("DeadLetterReason")
    if isinstance(broker_reason, str) and broker_reason:
        return _broker(envelope, broker_reason)
    record = _json_object(envelope.body)
    if (
        record is not None
        and isinstance(record.get("reason"), str)
        and isinstance(record.get("originalMessage"), dict)
    ):
        return _failure_record(envelope, record)
    return DeadLetter(
        envelope=envelope,
        kind=Kind.UNREADABLE,
        reason=UNREADABLE,
        description=_unreadable_description(envelope.body),
        job_id=_str(properties, "jobId"),
        failed_at=_utc(envelope.enqueued_time_utc),
    )


def _json_object(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _failure_record(envelope: Envelope, record: dict[str, Any]) -> DeadLetter:
    batch_error = record.get("batchError")
    code = _str(batch_error, "code") if isinstance(batch_error, dict) else None
    return DeadLetter(
        envelope=envelope,
        kind=Kind.FAILURE_RECORD,
        reason=record["reason"],
        description=_str(record, "description") or "",
        job_id=_str(record, "jobId"),
        account=_str(record, "account"),
        http_status=_int(record, "httpStatus"),
        batch_error_code=code or _str(envelope.application_properties, "batchErrorCode"),
        failed_at=_moment(_str(record, "failedAt")) or _utc(envelope.enqueued_time_utc),
        record=record,
    )


def _broker(envelope: Envelope, reason: str) -> DeadLetter:
    properties = envelope.application_properties
    source = _str(properties, "DeadLetterSource")
    job_id = account = None
    if envelope.body is not None:
        try:
            request = parse_request(envelope.body)
            job_id, account = request.job_id, request.account
        except InvalidMessageError as exc:
            job_id, account = exc.job_id, exc.account
    description = _str(properties, "DeadLetterErrorDescription") or ""
    if source:
        description = f"{description} (dead-lettered by the broker on {source})".strip()
    return DeadLetter(
        envelope=envelope,
        kind=Kind.BROKER,
        reason=reason,
        description=description,
        job_id=job_id,
        account=account,
        failed_at=_utc(envelope.enqueued_time_utc),
        source=source,
    )


def _unreadable_description(body: bytes | None) -> str:
    if body is None:
        return "not a failure record or a dead letter: the body is not binary data"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a failure record or a dead letter: {len(body)} bytes that are not UTF-8 text"
    preview = " ".join(text.split())[:80]
    return f"not a failure record or a dead letter: {preview!r}"


class NotReplayableError(ValueError):
    """The record cannot be replayed as is; `str()` says why and what to do instead."""


@dataclass(frozen=True)
class ReplayCopy:
    """The request to send again: a new message id, `replayOf` naming the dead letter."""

    message_id: str
    body: bytes
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    application_properties: dict[str | bytes, Any]


def _properties(source: dict[str, Any], drop: tuple[str, ...]) -> dict[str | bytes, Any]:
    kept: dict[str | bytes, Any] = {}
    for key, value in source.items():
        if key in drop or value is None:
            continue
        kept[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return kept


def replay_copy(
    dead_letter: DeadLetter,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    *,
    changes: Changes | None = None,
    named: bool = False,
) -> ReplayCopy:
    """What replaying `dead_letter` (with `changes`) sends to the deletion queue; raises
    NotReplayableError. `named`: the operator chose this record by its id."""
    changes = changes or Changes()
    body, kept, content_type, correlation_id, subject = _from_original(
        dead_letter, check=changes.body is None
    )
    try:
        body = apply(body, changes)
    except ChangeError as exc:
        raise NotReplayableError(f"{exc}; send a corrected request with --body or `enqueue`") from None
    try:
        parse_request(body)
    except InvalidMessageError as exc:
        if changes:
            raise NotReplayableError(
                f"the changed request is invalid ({exc.description}); nothing was sent"
            ) from None
        raise NotReplayableError(
            f"the original request is invalid ({exc.description}); replaying it would fail again: replay"
            f" it with --id {dead_letter.envelope.ref} --body FILE, send a corrected request with `enqueue`,"
            " or discard it"
        ) from None
    if dead_letter.reason in CANNOT_SUCCEED_UNCHANGED and not changes and not named:
        raise NotReplayableError(
            f"{dead_letter.reason}: the request was refused as it is, so it would fail again; name it"
            f" with --id {dead_letter.envelope.ref} (with --body FILE for a corrected request), or discard it"
        )
    kept[REPLAY_OF] = dead_letter.envelope.ref
    return ReplayCopy(
        message_id=new_id(),
        body=body,
        content_type=content_type or "application/json",
        correlation_id=correlation_id,
        subject=subject,
        application_properties=kept,
    )


def _from_original(
    dead_letter: DeadLetter, *, check: bool
) -> tuple[bytes, dict[str | bytes, Any], str | None, str | None, str | None]:
    """The original request and what travels with it: body, properties, content type, correlation id,
    subject. `check`: the body must be there whole (a corrected --body replaces it anyway)."""
    if dead_letter.kind is Kind.FAILURE_RECORD and dead_letter.record is not None:
        original = dead_letter.record["originalMessage"]
        if check and original.get("bodyTruncated"):
            raise NotReplayableError(
                f"the original body was cut at 64 KiB (it had {original.get('bodySize', '?')} bytes), so the"
                " request cannot be rebuilt from the record; send a corrected request with `enqueue`"
            )
        if check and "bodyBase64" in original:
            raise NotReplayableError(
                "the original body was not UTF-8 text (the record holds bodyBase64), so it is not a"
                " deletion request; send a corrected request with `enqueue`"
            )
        body_text = original.get("body")
        if check and not isinstance(body_text, str):
            raise NotReplayableError("the record holds no original body to replay")
        body = body_text.encode("utf-8") if isinstance(body_text, str) else b""
        properties = original.get("applicationProperties")
        kept = _properties(properties if isinstance(properties, dict) else {}, RETRY_PROPERTIES)
        content_type = _str(original, "contentType")
        correlation_id = _str(original, "correlationId")
        subject = None
    elif dead_letter.kind is Kind.BROKER and (broker_body := dead_letter.envelope.body) is not None:
        envelope = dead_letter.envelope
        body = broker_body
        kept = _properties(envelope.application_properties, RETRY_PROPERTIES + BROKER_PROPERTIES)
        content_type, correlation_id, subject = (
            envelope.content_type,
            envelope.correlation_id,
            envelope.subject,
        )
    else:
        raise NotReplayableError(
            "not a failure record or a broker dead letter: there is no request to replay"
        )
    return body, kept, content_type, correlation_id, subject
