"""What goes to the queues when a message does not end in a deletion: failure records (contract
section 5) and delayed-retry copies (section 4). Pure builders: no I/O, the time is passed in.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from delete_job.decision import Answer, Outcome
from shared.batch_client import BatchResponse
from shared.batch_errors import BatchTransportError
from shared.identity import TokenUnavailableError
from shared.servicebus import OutgoingMessage

__all__ = ["Received", "describe_failure", "failure_record", "redact", "retry_copy"]

MAX_ORIGINAL_BODY = 64 * 1024
MAX_DESCRIPTION = 4096 + 512  # Batch's raw text (up to 4 KiB) plus our sentence

# Anything that looks like a bearer token or a JWT never leaves in a record or a log line.
_SECRETS = re.compile(r"(?i)bearer\s+[^\s\"',;]+|eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    return _SECRETS.sub("REDACTED", text)


@dataclass(frozen=True, slots=True)
class Received:
    """The delivery being processed, as the failure record describes it."""

    message_id: str
    body: bytes
    correlation_id: str | None = None
    content_type: str | None = None
    subject: str | None = None
    enqueued_time_utc: datetime | None = None
    delivery_count: int | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    retry_attempt: int = 0

    @property
    def original_message_id(self) -> str:
        """The first message's id: this one's, unless it is a retry copy that names it."""
        named = self.application_properties.get("originalMessageId")
        return named if isinstance(named, str) and named else self.message_id


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Application property values as JSON can hold them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return _iso(value)
    return str(value)


def describe_original(received: Received) -> dict[str, Any]:
    original: dict[str, Any] = {
        "messageId": received.message_id,
        "correlationId": received.correlation_id,
        "contentType": received.content_type,
        "enqueuedTimeUtc": _iso(received.enqueued_time_utc),
        "deliveryCount": received.delivery_count,
        "applicationProperties": {k: _plain(v) for k, v in received.application_properties.items()},
    }
    original.update(_body_fields(received.body))
    return original


def _body_fields(body: bytes) -> dict[str, Any]:
    """`body` when the message is UTF-8 text, else `bodyBase64`; cut so the record fits the queue.

    The cut is measured on the JSON-escaped text (a control character escapes to six bytes), and it
    never splits a character."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        if len(body) <= MAX_ORIGINAL_BODY:
            return {"bodyBase64": base64.b64encode(body).decode("ascii")}
        cut = body[:MAX_ORIGINAL_BODY]
        return {
            "bodyBase64": base64.b64encode(cut).decode("ascii"),
            "bodyTruncated": True,
            "bodySize": len(body),
        }
    if _escaped_size(text) <= MAX_ORIGINAL_BODY:
        return {"body": text}
    low, high = 0, min(len(text), MAX_ORIGINAL_BODY)  # the longest prefix whose escaped form fits
    while low < high:
        middle = (low + high + 1) // 2
        if _escaped_size(text[:middle]) <= MAX_ORIGINAL_BODY:
            low = middle
        else:
            high = middle - 1
    return {"body": text[:low], "bodyTruncated": True, "bodySize": len(body)}


def _escaped_size(text: str) -> int:
    """Bytes of `text` inside a JSON string (without its two quotes)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8", errors="replace")) - 2


def _encodable(value: Any) -> Any:
    """A property value Service Bus can encode: the SDK fails the whole send on a lone surrogate
    (a message's JSON escape such as \\ud800 decodes to one), so it becomes '?'."""
    return value.encode("utf-8", errors="replace").decode("utf-8") if isinstance(value, str) else value


def _redacted(value: Any) -> Any:
    """Batch's error body, with any token-looking text removed from its strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    return value


def failure_record(
    *,
    reason: Outcome,
    description: str,
    received: Received,
    now: datetime,
    job_id: str | None = None,
    account: str | None = None,
    attempts: int = 0,
    answer: Answer | None = None,
    client_request_id: str | None = None,
) -> OutgoingMessage:
    """The record for DEAD_LETTER_QUEUE; its id is `<originalMessageId>:failed`, so a second record for the
    same request (a redelivery, a retry copy) is dropped by the queue's duplicate detection."""
    response = answer if isinstance(answer, BatchResponse) else None
    body = {
        "reason": str(reason),
        "description": redact(" ".join(description.split()))[:MAX_DESCRIPTION],
        "jobId": job_id,
        "account": account,
        "attempts": attempts,
        "retryAttempt": received.retry_attempt,
        "failedAt": _iso(now),
        "httpStatus": response.status if response else None,
        "batchError": _redacted(response.error.raw) if response and response.error else None,
        "requestId": response.request_id if response else None,
        "clientRequestId": response.client_request_id if response else client_request_id,
        "originalMessage": describe_original(received),
    }
    properties: dict[str, Any] = {"reason": str(reason)}
    optional = {
        "jobId": job_id,
        "account": account,
        "httpStatus": response.status if response else None,
        "batchErrorCode": response.error_code if response else None,
        "originalMessageId": received.original_message_id,
        "retryAttempt": received.retry_attempt,
    }
    properties.update({k: _encodable(v) for k, v in optional.items() if v is not None})
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return OutgoingMessage(
        body=text.encode("utf-8", errors="replace"),  # a lone surrogate cannot stop a record
        # Contract section 5: named after the request, not the delivery. A message whose completion failed
        # after its retry copy was sent comes back, and it and its copy can both fail for good: one id, so
        # the failure queue's duplicate detection keeps one record per request.
        message_id=f"{received.original_message_id}:failed",
        content_type="application/json",
        correlation_id=received.correlation_id or received.message_id,
        subject=str(reason),
        application_properties=properties,
    )


def retry_copy(*, received: Received, delay: float, now: datetime) -> OutgoingMessage:
    """The same request, delivered again after `delay` seconds as delayed retry N+1."""
    attempt = received.retry_attempt + 1
    original_id = received.original_message_id
    properties: dict[str, Any] = dict(received.application_properties)
    properties["retryAttempt"] = attempt
    properties["originalMessageId"] = original_id
    return OutgoingMessage(
        body=received.body,
        message_id=f"{original_id}:retry{attempt}",
        content_type=received.content_type,
        correlation_id=received.correlation_id,
        subject=received.subject,
        application_properties=properties,
        scheduled_enqueue_time_utc=now + timedelta(seconds=delay),
    )


_PRECONDITION_HINT = (
    "The job changed since the producer looked: check its current ETag / Last-Modified, then replay"
    " with updated preconditions (or without them) if it should still be deleted."
)
_TRANSIENT_HINT = (
    "Batch kept failing transiently through every delayed retry: check the account's health and"
    " throttling, then replay."
)
_ROLE_HINT = (
    "Check that the function's managed identity has the Azure Batch Job Submitter role on the"
    " account and that the account is enabled, then replay."
)
_NOT_YET_AUTHORIZED_HINT = (
    "Batch answered 403 through every delayed retry, longer than a new role assignment takes to apply"
    " (up to about 10 minutes). " + _ROLE_HINT
)
_IDENTITY_HINT = (
    "The function's managed identity got no token for Batch through every delayed retry: check the"
    " identity assigned to the app (AZURE_CLIENT_ID) and the platform's identity endpoint, then replay."
)


def _status_hint(status: int, location: str | None) -> str:
    if 300 <= status < 400:
        return (
            f"Batch answered with a redirect{f' to {location}' if location else ''}; redirects are never"
            " followed, so the token stayed here. Check BATCH_ENDPOINT / BATCH_ACCOUNTS."
        )
    if status in (401, 403):
        return _ROLE_HINT
    return "Fix the cause Batch names, then replay."


def _hint(outcome: Outcome, answer: Answer | None) -> str:
    status = answer.status if isinstance(answer, BatchResponse) else 0
    if outcome == Outcome.PRECONDITION_FAILED:
        return _PRECONDITION_HINT
    if outcome == Outcome.RETRIES_EXHAUSTED:
        if isinstance(answer, TokenUnavailableError):
            return _IDENTITY_HINT
        return _NOT_YET_AUTHORIZED_HINT if status == 403 else _TRANSIENT_HINT
    return _status_hint(status, answer.location if isinstance(answer, BatchResponse) else None)


def describe_failure(outcome: Outcome, job_id: str | None, answer: Answer | None, retries: int = 0) -> str:
    """One line a person can act on: what Batch said (or why it was not asked), and what to do."""
    if isinstance(answer, BatchTransportError):
        said = f"no answer ({answer.kind}: {answer})"
    elif isinstance(answer, TokenUnavailableError):
        said = f"no token from the managed identity endpoint ({answer})"
    elif answer is None:
        said = "no answer"
    else:
        said = f"HTTP {answer.status}"
        if answer.error is not None:
            text = (answer.error.message.value or "") if answer.error.message else ""
            said += f" {answer.error.code}: {text.splitlines()[0] if text else ''}".rstrip(": ")
            details = ", ".join(f"{v.key}={v.value}" for v in answer.error.values if v.key)
            if details:
                said += f" ({details})"
        elif answer.raw_body:
            said += f" with a body that is not Batch's error JSON: {answer.raw_body}"
        elif not answer.ok:
            said += " with no body"
    said = said.rstrip(".")  # Batch's message ends with a period, and so does the sentence around it
    job = f"job {job_id}" if job_id else "the job"
    if outcome == Outcome.RETRIES_EXHAUSTED:
        head = f"Batch did not delete {job} after {retries} delayed retries; last answer: {said}."
    elif outcome == Outcome.PRECONDITION_FAILED:
        head = f"Batch did not delete {job}: a precondition did not hold; {said}."
    else:
        head = f"Batch refused to delete {job}: {said}."
    return redact(" ".join(f"{head} {_hint(outcome, answer)}".split()))
