"""The dead-letter queue's I/O: browsing it without taking anything, and replaying chosen records.

Browsing peeks, page by page by sequence number: nothing is locked, removed or counted as a delivery.

Replaying (and discarding) selects records by peeking, then receives in peek-lock mode until each
selected one came by (a queue gives no other way to take one particular message). For a selected
record it sends the copy to the deletion queue and only then completes the record; a record whose send
failed, and every other message received on the way, is held until the end and then abandoned, so each
is received once per run. Abandoning counts a delivery: on a queue with a small max delivery count,
many filtered replays
could move the records they pass over to the queue's own dead-letter sub-queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSender
from azure.servicebus import ServiceBusReceiver as Receiver
from azure.servicebus.exceptions import ServiceBusError

from deleter_cli._deadletter import DeadLetter, Envelope, NotReplayableError, ReplayCopy, read, replay_copy

__all__ = ["Outcome", "ReplayResult", "browse", "discard", "replay"]

PAGE = 100
RECEIVE_BATCH = 50


def browse(receiver: Receiver) -> Iterator[DeadLetter]:
    """Every message on the queue, in sequence order, read; nothing is locked or removed."""
    next_number = 1
    while True:
        page = receiver.peek_messages(max_message_count=PAGE, sequence_number=next_number)
        if not page:
            return
        for message in page:
            yield read(Envelope.from_message(message))
        next_number = max(m.sequence_number or 0 for m in page) + 1


class Outcome(StrEnum):
    REPLAYED = "replayed"  # the copy was sent and the record removed (see `removed`)
    KEPT = "kept"  # the record is still on the queue: its copy was not sent
    SKIPPED = "skipped"  # not replayable as is; left on the queue
    DISCARDED = "discarded"  # removed without sending anything


@dataclass(frozen=True)
class ReplayResult:
    dead_letter: DeadLetter
    outcome: Outcome
    detail: str  # the new message id, or why not
    removed: bool = False


def replay(
    client: ServiceBusClient,
    receiver: Receiver,
    *,
    deletion_queue: str,
    selected: Sequence[DeadLetter],
    describe_send_error: Callable[[BaseException], str],
    on_result: Callable[[ReplayResult], None],
    max_wait_time: float = 5.0,
    copy: Callable[[DeadLetter], ReplayCopy] = replay_copy,
) -> list[ReplayResult]:
    """Replay `selected` (records peeked with `receiver`, a peek-lock receiver on the dead-letter queue,
    which receives them now); `copy` makes what goes to `deletion_queue`; `on_result` hears of each as
    it is settled."""
    results: list[ReplayResult] = []

    def settle(result: ReplayResult) -> None:
        results.append(result)
        on_result(result)

    pending: dict[int, DeadLetter] = {}
    for dead_letter in selected:
        try:
            copy(dead_letter)
        except NotReplayableError as exc:
            settle(ReplayResult(dead_letter, Outcome.SKIPPED, str(exc)))
        else:
            pending[dead_letter.envelope.sequence_number] = dead_letter
    if not pending:
        return results
    sender = _LazySender(client, deletion_queue)
    try:
        _take(
            receiver,
            pending,
            lambda message: _replay_one(receiver, sender, message, describe_send_error, copy),
            settle,
            max_wait_time,
        )
    finally:
        sender.close()
    return results


def discard(
    receiver: Receiver,
    *,
    selected: Sequence[DeadLetter],
    on_result: Callable[[ReplayResult], None],
    max_wait_time: float = 5.0,
) -> list[ReplayResult]:
    """Remove `selected` from the dead-letter queue without sending anything."""
    results: list[ReplayResult] = []

    def settle(result: ReplayResult) -> None:
        results.append(result)
        on_result(result)

    def remove(message: ServiceBusReceivedMessage) -> ReplayResult:
        dead_letter = read(Envelope.from_message(message))
        try:
            receiver.complete_message(message)
        except (ServiceBusError, ValueError) as exc:
            return ReplayResult(dead_letter, Outcome.KEPT, f"could not be removed ({type(exc).__name__})")
        return ReplayResult(dead_letter, Outcome.DISCARDED, "removed", removed=True)

    pending = {dead_letter.envelope.sequence_number: dead_letter for dead_letter in selected}
    if pending:
        _take(receiver, pending, remove, settle, max_wait_time)
    return results


def _take(
    receiver: Receiver,
    pending: dict[int, DeadLetter],
    act: Callable[[ServiceBusReceivedMessage], ReplayResult],
    settle: Callable[[ReplayResult], None],
    max_wait_time: float,
) -> None:
    """Receive until every `pending` record came by, `act` on each; everything else (and a record
    `act` did not settle) is abandoned at the end, so each is received once per run."""
    held: list[ServiceBusReceivedMessage] = []
    seen: set[int] = set()
    try:
        while pending:
            batch = receiver.receive_messages(max_message_count=RECEIVE_BATCH, max_wait_time=max_wait_time)
            news = [m for m in batch if (m.sequence_number or 0) not in seen]
            for message in batch:
                number = message.sequence_number or 0
                seen.add(number)
                if pending.pop(number, None) is None:
                    held.append(message)  # not chosen, or chosen and already settled
                    continue
                result = act(message)
                if not result.removed and result.outcome is not Outcome.REPLAYED:
                    held.append(message)
                settle(result)
            if not news:  # nothing new came (empty, or only expired locks coming back): stop
                break
    finally:
        for message in held:
            with contextlib.suppress(ServiceBusError, ValueError):  # a lost lock frees it anyway
                receiver.abandon_message(message)
    for dead_letter in pending.values():
        settle(
            ReplayResult(
                dead_letter,
                Outcome.KEPT,
                "not received: another receiver holds it, or it was removed since it was listed",
            )
        )


def _replay_one(
    receiver: Receiver,
    sender: _LazySender,
    message: ServiceBusReceivedMessage,
    describe_send_error: Callable[[BaseException], str],
    make_copy: Callable[[DeadLetter], ReplayCopy],
) -> ReplayResult:
    dead_letter = read(Envelope.from_message(message))  # what is completed is what is sent
    try:
        copy = make_copy(dead_letter)
    except NotReplayableError as exc:
        return ReplayResult(dead_letter, Outcome.SKIPPED, str(exc))
    outgoing = ServiceBusMessage(
        copy.body,
        message_id=copy.message_id,
        content_type=copy.content_type,
        correlation_id=copy.correlation_id,
        subject=copy.subject,
        application_properties=dict(copy.application_properties.items()),
    )
    try:
        sender.send(outgoing)
    except ServiceBusError as exc:
        return ReplayResult(dead_letter, Outcome.KEPT, f"the copy was not sent: {describe_send_error(exc)}")
    try:
        receiver.complete_message(message)
    except (ServiceBusError, ValueError) as exc:
        return ReplayResult(
            dead_letter,
            Outcome.REPLAYED,
            f"{copy.message_id}, but the record could not be removed ({type(exc).__name__}): it is"
            " still on the queue and a second replay would send the request again",
        )
    return ReplayResult(dead_letter, Outcome.REPLAYED, copy.message_id, removed=True)


class _LazySender:
    """A sender opened on first use and reopened after a failure (a broken link is not reused)."""

    def __init__(self, client: ServiceBusClient, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._sender: ServiceBusSender | None = None

    def send(self, message: ServiceBusMessage) -> None:
        if self._sender is None:
            self._sender = self._client.get_queue_sender(self._queue)
        try:
            self._sender.send_messages(message)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(Exception):  # closing a broken sender may fail; nothing to do about it
                sender.close()
