"""A message as the broker stores it, and the bytes it sends for each delivery or peek."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from proton import symbol as proton_symbol

from emulators.servicebus import _amqp as amqp

__all__ = ["MessageState", "StoredMessage", "parse_message", "parse_transfer"]

# Annotations the broker owns: a client's values for these are dropped on the way in.
_BROKER_ANNOTATIONS = frozenset(
    {
        "x-opt-sequence-number",
        "x-opt-enqueued-time",
        "x-opt-locked-until",
        "x-opt-lock-token",
        "x-opt-message-state",
        "x-opt-deadletter-source",
        "x-opt-enqueue-sequence-number",
    }
)
_SCHEDULED_ENQUEUE_TIME = "x-opt-scheduled-enqueue-time"
_KEY_SEQUENCE_NUMBER = amqp.symbol("x-opt-sequence-number")
_KEY_ENQUEUED_TIME = amqp.symbol("x-opt-enqueued-time")
_KEY_LOCKED_UNTIL = amqp.symbol("x-opt-locked-until")
_KEY_LOCK_TOKEN = amqp.symbol("x-opt-lock-token")
_KEY_MESSAGE_STATE = amqp.symbol("x-opt-message-state")
_KEY_DEAD_LETTER_SOURCE = amqp.symbol("x-opt-deadletter-source")
_KEY_ENQUEUE_SEQUENCE_NUMBER = amqp.symbol("x-opt-enqueue-sequence-number")
_MAX_UINT = 2**32 - 1


class MessageState(IntEnum):
    """``x-opt-message-state``, as the SDK's ``ServiceBusMessageState`` reads it."""

    ACTIVE = 0
    DEFERRED = 1
    SCHEDULED = 2


@dataclass(slots=True, eq=False)
class StoredMessage:
    """The client's sections kept as sent, plus the broker's bookkeeping."""

    message_id: Any
    properties: bytes  # raw properties section
    application_properties: bytes  # raw application-properties section
    tail: bytes  # raw body and footer sections
    annotation_entries: bytes  # the client's message annotations, broker-owned keys removed
    annotation_count: int
    durable: bool | None
    priority: int | None
    ttl_ms: int | None
    scheduled_ms: int | None
    sequence_number: int = 0
    enqueued_ms: int = 0
    expires_ms: int | None = None
    delivery_count: int = 0
    state: MessageState = MessageState.ACTIVE
    lock_token: uuid.UUID | None = None
    locked_until_ms: int = 0
    dead_letter_source: str | None = None  # set when forwarded: the queue it was dead-lettered on
    enqueued_sequence_number: int | None = None  # set when forwarded: its number on that queue

    def to_wire(self, *, locked: bool) -> bytes:
        """The encoded message for one delivery (``locked``: with its lock token and locked-until)."""
        entries = [
            self.annotation_entries,
            _KEY_SEQUENCE_NUMBER,
            amqp.long_value(self.sequence_number),
            _KEY_ENQUEUED_TIME,
            amqp.timestamp_value(self.enqueued_ms),
            _KEY_MESSAGE_STATE,
            amqp.int_value(self.state),
        ]
        count = self.annotation_count + 6
        if locked and self.lock_token is not None:
            entries += (
                _KEY_LOCK_TOKEN,
                amqp.uuid_value(self.lock_token),
                _KEY_LOCKED_UNTIL,
                amqp.timestamp_value(self.locked_until_ms),
            )
            count += 4
        if self.dead_letter_source is not None:
            entries += (_KEY_DEAD_LETTER_SOURCE, amqp.string_value(self.dead_letter_source))
            count += 2
        if self.enqueued_sequence_number is not None:
            entries += (_KEY_ENQUEUE_SEQUENCE_NUMBER, amqp.long_value(self.enqueued_sequence_number))
            count += 2
        return b"".join(
            (
                amqp.encode_header(
                    durable=self.durable,
                    priority=self.priority,
                    ttl_ms=self.ttl_ms,
                    delivery_count=self.delivery_count,
                ),
                amqp.encode_annotations(b"".join(entries), count),
                self.properties,
                self.application_properties,
                self.tail,
            )
        )

    def with_properties(self, updates: dict[str, Any]) -> StoredMessage:
        """A copy whose application properties carry ``updates`` (None values are left out)."""
        current = amqp.split_sections(self.application_properties).value(amqp.APPLICATION_PROPERTIES)
        merged = dict(current or {})
        merged.update({key: value for key, value in updates.items() if value is not None})
        return replace(
            self, application_properties=amqp.encode_map_section(amqp.APPLICATION_PROPERTIES, merged)
        )


def _timestamp_ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def parse_message(payload: bytes) -> StoredMessage:
    """One encoded message -> ``StoredMessage`` (not yet numbered); ``AmqpDecodeError`` if malformed."""
    return _from_sections(amqp.split_sections(payload))


def parse_transfer(payload: bytes) -> list[StoredMessage]:
    """A transfer's payload: one message, or each message of an SDK batch."""
    sections = amqp.split_sections(payload)
    inner = amqp.split_batch(sections)
    if inner is None:
        return [_from_sections(sections)]
    return [parse_message(message) for message in inner]


def _from_sections(sections: amqp.Sections) -> StoredMessage:
    header = sections.value(amqp.HEADER) or []
    header = list(header) + [None] * (5 - len(header))
    annotations = sections.value(amqp.MESSAGE_ANNOTATIONS) or {}
    kept = {key: value for key, value in annotations.items() if str(key) not in _BROKER_ANNOTATIONS}
    entries, count = amqp.map_entries({proton_symbol(str(key)): value for key, value in kept.items()})
    ttl = header[2]
    payload = sections.payload
    body_start = sections.bodies[0][1] if sections.bodies else None
    footer = sections.spans.get(amqp.FOOTER)
    tail_start = body_start if body_start is not None else (footer[0] if footer else len(payload))
    return StoredMessage(
        message_id=amqp.message_id(sections),
        properties=sections.raw(amqp.PROPERTIES),
        application_properties=sections.raw(amqp.APPLICATION_PROPERTIES),
        tail=payload[tail_start:],
        annotation_entries=entries,
        annotation_count=count,
        durable=header[0] if isinstance(header[0], bool) else None,
        priority=int(header[1]) if isinstance(header[1], int) else None,
        ttl_ms=min(int(ttl), _MAX_UINT) if isinstance(ttl, int) and ttl > 0 else None,
        scheduled_ms=_timestamp_ms(kept.get(_SCHEDULED_ENQUEUE_TIME)),
    )
