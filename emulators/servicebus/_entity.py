"""Queues and their dead-letter sub-queues: every rule of a message's life, with no I/O.

Times are integer milliseconds since the epoch, passed in by the caller. A message is in exactly one
entity's ``messages`` and in one state: scheduled, active (available, or locked by a receiver) or
deferred (locked once received by sequence number). Deliveries that fail (abandon, lock expiry) count
towards ``maxDeliveryCount``; a release does not.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Iterable
from dataclasses import replace
from enum import Enum
from typing import Any

from emulators.servicebus._config import QueueSettings
from emulators.servicebus._message import MessageState, StoredMessage

__all__ = ["Entity", "LockLost", "MessageNotFound", "Namespace", "Outcome", "Queue"]

DEAD_LETTER_SUFFIX = "$deadletterqueue"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"
_LOCK, _SCHEDULE = "lock", "schedule"


class Outcome(Enum):
    """What a receiver asked for: over the link (accepted, modified, rejected, released) or $management."""

    COMPLETE = "completed"
    ABANDON = "abandoned"
    DEFER = "defered"  # sic: the management operation's spelling
    DEAD_LETTER = "suspended"
    RELEASE = "released"


class LockLost(Exception):
    """The lock token is unknown, already settled, or its lock has expired."""


class MessageNotFound(Exception):
    """No deferred message has that sequence number."""


class Entity:
    """A receivable message store: a queue itself or its ``$DeadLetterQueue``."""

    def __init__(self, namespace: Namespace, queue: Queue, path: str, *, dead_letter_queue: bool) -> None:
        self.namespace = namespace
        self.queue = queue
        self.path = path
        self.is_dead_letter_queue = dead_letter_queue
        self.messages: dict[int, StoredMessage] = {}
        self._available: list[int] = []  # heap of sequence numbers; may hold expired entries
        self._locks: dict[uuid.UUID, StoredMessage] = {}

    def __repr__(self) -> str:
        return f"<Entity {self.path}>"

    @property
    def lock_ms(self) -> int:
        return round(self.queue.settings.lock_duration * 1000)

    def has_available(self) -> bool:
        return bool(self._available)

    def add(self, message: StoredMessage, now: int) -> None:
        """Take in a numbered message: scheduled for later, or available now."""
        self.messages[message.sequence_number] = message
        if message.state is MessageState.SCHEDULED:
            self.namespace.add_timer(message.enqueued_ms, self, _SCHEDULE, message.sequence_number)
        else:
            self._make_available(message)

    def _make_available(self, message: StoredMessage) -> None:
        message.state = MessageState.ACTIVE
        heapq.heappush(self._available, message.sequence_number)
        self.namespace.dirty.add(self)

    def acquire(self, now: int, *, lock: bool) -> StoredMessage | None:
        """The next available message, locked (peek-lock) or removed (receive-and-delete)."""
        while self._available:
            sequence_number = heapq.heappop(self._available)
            message = self.messages.get(sequence_number)
            if message is None or message.state is not MessageState.ACTIVE or message.lock_token:
                continue
            if message.expires_ms is not None and message.expires_ms <= now:
                del self.messages[sequence_number]  # time to live over: gone, as without DLQ-on-expiry
                continue
            if lock:
                self._lock(message, now)
            else:
                del self.messages[sequence_number]
            return message
        return None

    def _lock(self, message: StoredMessage, now: int) -> None:
        message.lock_token = uuid.uuid4()
        message.locked_until_ms = now + self.lock_ms
        self._locks[message.lock_token] = message
        self.namespace.add_timer(message.locked_until_ms, self, _LOCK, message.lock_token)

    def _take_lock(self, token: uuid.UUID, now: int) -> StoredMessage:
        message = self._locks.pop(token, None)
        if message is None:
            raise LockLost(f"the lock {token} is not held (expired or already settled)")
        message.lock_token = None
        if message.locked_until_ms <= now:
            self._failed_delivery(message, now)
            raise LockLost(f"the lock {token} expired")
        return message

    def settle(
        self,
        token: uuid.UUID,
        outcome: Outcome,
        now: int,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        """Apply a receiver's outcome to a locked message; ``LockLost`` when the lock is gone."""
        message = self._take_lock(token, now)
        if outcome is Outcome.COMPLETE:
            del self.messages[message.sequence_number]
        elif outcome is Outcome.RELEASE:
            self._unlocked(message)
        elif outcome is Outcome.ABANDON:
            self._failed_delivery(message, now)
        elif outcome is Outcome.DEFER:
            message.state = MessageState.DEFERRED
        else:
            del self.messages[message.sequence_number]
            self.queue.dead_letter(message, reason, description, now, source=self)

    def _unlocked(self, message: StoredMessage) -> None:
        """Back where it was: available again, or deferred again."""
        if message.state is MessageState.ACTIVE:
            self._make_available(message)

    def _failed_delivery(self, message: StoredMessage, now: int) -> None:
        message.delivery_count += 1
        limit = self.queue.settings.max_delivery_count
        if message.delivery_count >= limit and not self.is_dead_letter_queue:
            del self.messages[message.sequence_number]
            description = f"Message could not be consumed after {limit} delivery attempts."
            self.queue.dead_letter(message, MAX_DELIVERY_COUNT_EXCEEDED, description, now, source=self)
        else:
            self._unlocked(message)

    def renew(self, token: uuid.UUID, now: int) -> int:
        """Extend a lock by the lock duration from now; returns the new locked-until."""
        message = self._locks.get(token)
        if message is None or message.locked_until_ms <= now:
            self._take_lock(token, now)  # raises LockLost (and counts an expired lock's delivery)
            raise LockLost(f"the lock {token} is not held")  # not reached
        message.locked_until_ms = now + self.lock_ms
        self.namespace.add_timer(message.locked_until_ms, self, _LOCK, token)
        return message.locked_until_ms

    def peek(self, from_sequence_number: int, count: int, now: int) -> list[StoredMessage]:
        """Up to ``count`` messages in sequence order (any state), without locking them."""
        numbers = (
            number
            for number, message in self.messages.items()
            if number >= from_sequence_number
            and (message.expires_ms is None or message.expires_ms > now or message.lock_token)
        )
        return [self.messages[number] for number in heapq.nsmallest(count, numbers)]

    def receive_deferred(
        self, sequence_numbers: Iterable[int], now: int, *, lock: bool
    ) -> list[StoredMessage]:
        """Deferred messages by number, locked (or removed); ``MessageNotFound`` names a missing one."""
        found: list[StoredMessage] = []
        for number in sequence_numbers:
            message = self.messages.get(number)
            if message is None or message.state is not MessageState.DEFERRED or message.lock_token:
                raise MessageNotFound(f"no deferred message with sequence number {number}")
            found.append(message)
        for message in found:
            if lock:
                self._lock(message, now)
            else:
                del self.messages[message.sequence_number]
        return found

    def cancel_scheduled(self, sequence_numbers: Iterable[int]) -> None:
        """Forget scheduled messages; numbers already enqueued or unknown are ignored."""
        for number in sequence_numbers:
            message = self.messages.get(number)
            if message is not None and message.state is MessageState.SCHEDULED:
                del self.messages[number]

    def _activate(self, message: StoredMessage, now: int) -> None:
        """A scheduled message comes due: "appended to the queue as if it had been enqueued at the
        current instant, which includes assigning a new SequenceNumber" (Service Bus docs, "Message
        sequencing and timestamps"); its time to live counts from then ("Message expiration")."""
        del self.messages[message.sequence_number]
        message.sequence_number = self.queue.next_sequence_number()
        message.enqueued_ms = now
        message.expires_ms = None if message.ttl_ms is None else now + message.ttl_ms
        self.messages[message.sequence_number] = message
        self._make_available(message)

    def on_timer(self, kind: str, key: Any, now: int) -> None:
        if kind == _SCHEDULE:
            message = self.messages.get(key)
            if message is not None and message.state is MessageState.SCHEDULED:
                self._activate(message, now)
            return
        message = self._locks.get(key)
        if message is not None and message.locked_until_ms <= now:
            del self._locks[key]
            message.lock_token = None
            self._failed_delivery(message, now)


class Queue:
    """A declared queue: its entity, its dead-letter sub-queue, sequence numbers, duplicate detection."""

    def __init__(self, namespace: Namespace, settings: QueueSettings) -> None:
        self.namespace = namespace
        self.settings = settings
        self.main = Entity(namespace, self, settings.name, dead_letter_queue=False)
        self.dead_letter_queue = Entity(
            namespace, self, f"{settings.name}/$DeadLetterQueue", dead_letter_queue=True
        )
        self._sequence = itertools.count(1)
        self._recent_ids: dict[Any, int] = {}  # message_id -> end of its window (insertion-ordered)
        self._send_faults = random.Random(settings.reject_send_seed)  # a test fault, not cryptography
        self._stall_faults = random.Random(settings.reject_send_seed)

    def refuses_send(self) -> bool:
        """Whether to refuse the transfer just received (``rejectSendRate``); one draw per transfer."""
        rate = self.settings.reject_send_rate
        return rate > 0 and self._send_faults.random() < rate

    def stalls_send(self) -> bool:
        """Whether to leave the transfer just received unanswered (``stallSendRate``)."""
        rate = self.settings.stall_send_rate
        return rate > 0 and self._stall_faults.random() < rate

    def next_sequence_number(self) -> int:
        return next(self._sequence)

    def _is_duplicate(self, message_id: Any, now: int) -> bool:
        window = self.settings.duplicate_detection_window
        if not window or message_id is None:
            return False
        recent = self._recent_ids
        while recent:
            oldest, ends = next(iter(recent.items()))
            if ends > now:
                break
            del recent[oldest]
        if message_id in recent:
            return True
        recent[message_id] = now + round(window * 1000)
        return False

    def send(self, message: StoredMessage, now: int) -> int:
        """Enqueue (or schedule) a sent message; returns its sequence number.

        A duplicate within the detection window is accepted, numbered, and dropped.
        """
        message.sequence_number = self.next_sequence_number()
        if self._is_duplicate(message.message_id, now):
            return message.sequence_number
        self._stamp(message, now)
        self.main.add(message, now)
        return message.sequence_number

    def _stamp(self, message: StoredMessage, now: int) -> None:
        """Enqueued time (a scheduled message's is its scheduled time until it is activated), state,
        time to live."""
        scheduled = message.scheduled_ms
        if scheduled is not None and scheduled > now:
            message.state = MessageState.SCHEDULED
        message.enqueued_ms = max(now, scheduled or 0)
        default_ttl = self.settings.default_message_time_to_live
        if default_ttl is not None:
            # The default applies to messages without a time to live and caps the others: "Messages
            # that have a longer TimeToLive expiration than the default value are silently adjusted to
            # the defaultMessageTimeToLive value before being enqueued" (docs, "Message expiration").
            ceiling = min(round(default_ttl * 1000), 2**32 - 1)
            message.ttl_ms = ceiling if message.ttl_ms is None else min(message.ttl_ms, ceiling)
        message.expires_ms = None if message.ttl_ms is None else message.enqueued_ms + message.ttl_ms

    def dead_letter(
        self, message: StoredMessage, reason: str | None, description: str | None, now: int, *, source: Entity
    ) -> None:
        """Move a message to the dead-letter sub-queue, or forward it where the queue says."""
        dead = message.with_properties(
            {"DeadLetterReason": reason, "DeadLetterErrorDescription": description}
        )
        dead.lock_token = None
        dead.state = MessageState.ACTIVE
        forward_to = self.settings.forward_dead_lettered_messages_to
        if forward_to is None or source.is_dead_letter_queue:
            dead.expires_ms = None  # the dead-letter queue ignores time to live
            self.dead_letter_queue.add(dead, now)
            return
        target = self.namespace.queues[forward_to.lower()]
        forwarded = replace(
            dead.with_properties({"DeadLetterSource": self.settings.name}),
            delivery_count=0,
            scheduled_ms=None,
            dead_letter_source=self.settings.name,
            enqueued_sequence_number=message.sequence_number,
            sequence_number=target.next_sequence_number(),
        )
        target._stamp(forwarded, now)
        target.main.add(forwarded, now)


class Namespace:
    """All queues, the timers their locks and schedules need, and which entities gained messages."""

    def __init__(self, settings: Iterable[QueueSettings]) -> None:
        self.queues = {queue.name.lower(): Queue(self, queue) for queue in settings}
        self.dirty: set[Entity] = set()  # entities with newly available messages, for the broker to pump
        self._timers: list[tuple[int, int, Entity, str, Any]] = []
        self._timer_ids = itertools.count()

    def entity(self, path: str) -> Entity | None:
        """``orders`` or ``orders/$DeadLetterQueue`` (any case) -> its entity; None if not declared."""
        name, _, sub_queue = path.strip("/").lower().partition("/")
        queue = self.queues.get(name)
        if queue is None:
            return None
        if not sub_queue:
            return queue.main
        return queue.dead_letter_queue if sub_queue == DEAD_LETTER_SUFFIX else None

    def add_timer(self, due: int, entity: Entity, kind: str, key: Any) -> None:
        heapq.heappush(self._timers, (due, next(self._timer_ids), entity, kind, key))

    def next_timer(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def run_timers(self, now: int) -> None:
        """Fire every timer due by ``now`` (lock expiry, scheduled enqueue)."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, entity, kind, key = heapq.heappop(timers)
            entity.on_timer(kind, key, now)
