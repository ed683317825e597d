"""Request/response nodes: ``$cbs`` (put-token) and ``<entity>/$management``.

Each request is one decoded AMQP message; each answer is one message correlated to it by message-id,
with the status in application properties (``status-code`` on ``$cbs``, ``statusCode`` elsewhere)
and, on failure, ``errorCondition`` (which the SDK maps to its exception types):

| failure | status | errorCondition | SDK raises |
|---|---|---|---|
| lock not held (renew, settle) | 410 | com.microsoft:message-lock-lost | MessageLockLostError |
| no deferred message with that number | 404 | com.microsoft:message-not-found | MessageNotFoundError |
| malformed request | 400 | com.microsoft:argument-error | ServiceBusError |
| other operations (sessions, rules) | 501 | amqp:not-implemented | ServiceBusError |

``peek-message`` answers 204 when there is nothing to peek. The operations are ``_OPERATIONS``.
A put-token on ``$cbs`` is checked by ``_auth``: 401 when refused.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proton import Array, Message, int32, timestamp

from emulators.servicebus._amqp import AmqpDecodeError
from emulators.servicebus._auth import Grants, Keys, TokenRefused
from emulators.servicebus._entity import Entity, LockLost, MessageNotFound, Outcome
from emulators.servicebus._message import StoredMessage, parse_message

__all__ = ["cbs_reply", "management_reply"]

log = logging.getLogger("emulators.servicebus")

_LOCK_LOST = "com.microsoft:message-lock-lost"
_NOT_FOUND = "com.microsoft:message-not-found"
_ARGUMENT_ERROR = "com.microsoft:argument-error"
_NOT_IMPLEMENTED = "amqp:not-implemented"
_PEEK_LOCK = 1  # receiver-settle-mode "second"; 0 ("first") is receive-and-delete


@dataclass
class _Answer:
    status: int
    description: str = "OK"
    body: Any = None
    condition: str | None = None


class _BadRequest(Exception):
    """A request field is missing or of the wrong type."""


def _elements(value: Any) -> list[Any]:
    """An AMQP array or list as a Python list (proton decodes arrays to ``Array``)."""
    if isinstance(value, Array):
        return list(value.elements)
    if isinstance(value, list | tuple):
        return list(value)
    raise _BadRequest(f"expected an array, got {type(value).__name__}")


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise _BadRequest(f"missing {name!r}")
    return body[name]


def _lock_tokens(body: dict[str, Any]) -> list[uuid.UUID]:
    try:
        return [
            token if isinstance(token, uuid.UUID) else uuid.UUID(str(token))
            for token in _elements(_field(body, "lock-tokens"))
        ]
    except ValueError:
        raise _BadRequest("lock-tokens must be UUIDs") from None


def _sequence_numbers(body: dict[str, Any]) -> list[int]:
    numbers = _elements(_field(body, "sequence-numbers"))
    if not all(isinstance(number, int) for number in numbers):
        raise _BadRequest("sequence-numbers must be longs")
    return [int(number) for number in numbers]


def _renew_lock(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    expirations = [timestamp(entity.renew(token, now)) for token in _lock_tokens(body)]
    return _Answer(200, body={"expirations": expirations})


def _schedule_message(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    if entity.is_dead_letter_queue:
        raise _BadRequest("messages cannot be scheduled on a dead-letter queue")
    parsed: list[StoredMessage] = []
    for item in _elements(_field(body, "messages")):
        if not isinstance(item, dict) or not isinstance(item.get("message"), bytes | memoryview):
            raise _BadRequest("each scheduled message needs a binary 'message'")
        parsed.append(parse_message(bytes(item["message"])))
    numbers = [entity.queue.send(message, now) for message in parsed]
    return _Answer(200, body={"sequence-numbers": numbers})


def _cancel_scheduled_message(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    entity.cancel_scheduled(_sequence_numbers(body))
    return _Answer(200)


def _peek_message(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    start = _field(body, "from-sequence-number")
    count = _field(body, "message-count")
    if not isinstance(start, int) or not isinstance(count, int):
        raise _BadRequest("from-sequence-number and message-count must be integers")
    messages = entity.peek(int(start), max(int(count), 0), now)
    if not messages:
        return _Answer(204, "No messages to peek")
    return _Answer(200, body={"messages": [{"message": m.to_wire(locked=False)} for m in messages]})


def _update_disposition(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    status = _field(body, "disposition-status")
    try:
        outcome = Outcome(status)
    except ValueError:
        raise _BadRequest(f"unknown disposition-status {status!r}") from None
    if outcome is Outcome.RELEASE:
        raise _BadRequest("disposition-status must be completed, abandoned, defered or suspended")
    reason, description = body.get("deadletter-reason"), body.get("deadletter-description")
    for token in _lock_tokens(body):
        entity.settle(token, outcome, now, reason=reason, description=description)
    return _Answer(200)


def _receive_by_sequence_number(entity: Entity, body: dict[str, Any], now: int) -> _Answer:
    lock = body.get("receiver-settle-mode", _PEEK_LOCK) == _PEEK_LOCK
    messages = entity.receive_deferred(_sequence_numbers(body), now, lock=lock)
    answers: list[dict[str, Any]] = []
    for message in messages:
        answer: dict[str, Any] = {"message": message.to_wire(locked=lock)}
        if lock:
            answer["lock-token"] = message.lock_token
        answers.append(answer)
    return _Answer(200, body={"messages": answers})


_OPERATIONS: dict[str, Callable[[Entity, dict[str, Any], int], _Answer]] = {
    "com.microsoft:renew-lock": _renew_lock,
    "com.microsoft:schedule-message": _schedule_message,
    "com.microsoft:cancel-scheduled-message": _cancel_scheduled_message,
    "com.microsoft:peek-message": _peek_message,
    "com.microsoft:update-disposition": _update_disposition,
    "com.microsoft:receive-by-sequence-number": _receive_by_sequence_number,
}


def _reply(request: Message, code_key: str, description_key: str, answer: _Answer) -> Message:
    properties: dict[str, Any] = {code_key: int32(answer.status), description_key: answer.description}
    if answer.condition is not None:
        properties["errorCondition"] = answer.condition
    return Message(correlation_id=request.id, properties=properties, body=answer.body)


def management_reply(entity: Entity, request: Message, now: int) -> Message:
    """Run one ``$management`` request against ``entity``; the answer carries statusCode/statusDescription."""
    properties: dict[Any, Any] = request.properties or {}
    operation = str(properties.get("operation", ""))
    handler = _OPERATIONS.get(operation)
    try:
        if handler is None:
            answer = _Answer(501, f"operation {operation!r} is not supported", condition=_NOT_IMPLEMENTED)
        else:
            body = request.body if isinstance(request.body, dict) else {}
            answer = handler(entity, body, now)
    except LockLost as error:
        answer = _Answer(410, str(error), condition=_LOCK_LOST)
    except MessageNotFound as error:
        answer = _Answer(404, str(error), condition=_NOT_FOUND)
    except (_BadRequest, AmqpDecodeError) as error:
        answer = _Answer(400, str(error), condition=_ARGUMENT_ERROR)
    log.info("%s %s -> %s", entity.path, operation, answer.status)
    return _reply(request, "statusCode", "statusDescription", answer)


def cbs_reply(request: Message, keys: Keys, grants: Grants, now: float) -> Message:
    """Check a put-token (``_auth``): a valid token is added to ``grants``; an invalid one is
    answered 401, which the SDK raises as ServiceBusAuthenticationError."""
    properties: dict[Any, Any] = request.properties or {}
    operation = properties.get("operation")
    if operation != "put-token":
        answer = _Answer(400, f"unsupported $cbs operation {operation!r}")
    elif not isinstance(request.body, str | bytes):
        answer = _Answer(400, "put-token needs the token as the message body")
    else:
        token = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
        try:
            resource, expiry = keys.check(token, now)
        except TokenRefused as refused:
            log.info("put-token refused: %s", refused)  # the reason only: never the token
            answer = _Answer(401, str(refused))
        else:
            grants.add(resource, expiry)
            answer = _Answer(200, "OK")
    return _reply(request, "status-code", "status-description", answer)
