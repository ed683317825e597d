"""The replay loop's rare paths, with stand-ins for the SDK's client, sender and receiver: a record that
cannot be removed after its copy was sent, a record that never comes, a lock that comes back. (The
common paths run against the real emulator in test_cli_replay.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from azure.servicebus.amqp import AmqpMessageBodyType
from azure.servicebus.exceptions import MessageLockLostError, ServiceBusError

from deleter_cli._deadletter import DeadLetter, Envelope, read
from deleter_cli._dlq import Outcome, ReplayResult, replay


def message(number: int, job_id: str = "j") -> Any:
    """What the SDK hands over for a broker dead letter, as far as the tool reads it."""
    return SimpleNamespace(
        sequence_number=number,
        message_id=f"m-{number}",
        body_type=AmqpMessageBodyType.DATA,
        body=iter([json.dumps({"jobId": job_id}).encode()]),
        correlation_id=None,
        content_type="application/json",
        subject=None,
        enqueued_time_utc=None,
        delivery_count=0,
        application_properties={b"DeadLetterReason": b"MaxDeliveryCountExceeded"},
    )


def peeked(number: int) -> DeadLetter:
    return read(Envelope.from_message(message(number)))


@dataclass
class FakeReceiver:
    batches: Iterator[list[Any]]
    complete_fails: set[int] = field(default_factory=set)
    completed: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)

    def receive_messages(self, max_message_count: int, max_wait_time: float) -> list[Any]:
        return next(self.batches, [])

    def complete_message(self, received: Any) -> None:
        if received.sequence_number in self.complete_fails:
            raise MessageLockLostError(message="lock lost")
        self.completed.append(received.sequence_number)

    def abandon_message(self, received: Any) -> None:
        self.abandoned.append(received.sequence_number)


@dataclass
class FakeClient:
    fail_jobs: set[str] = field(default_factory=set)
    sent: list[Any] = field(default_factory=list)
    senders: int = 0

    def get_queue_sender(self, queue: str) -> Any:
        self.senders += 1
        client = self

        class Sender:
            def send_messages(self, outgoing: Any) -> None:
                if json.loads(b"".join(outgoing.body))["jobId"] in client.fail_jobs:
                    raise ServiceBusError("link detached")
                client.sent.append(outgoing)

            def close(self) -> None:
                pass

        return Sender()


def run(client: FakeClient, receiver: FakeReceiver, numbers: list[int]) -> list[ReplayResult]:
    return replay(
        client,  # type: ignore[arg-type]
        receiver,  # type: ignore[arg-type]
        deletion_queue="deletions",
        selected=[peeked(n) for n in numbers],
        describe_send_error=str,
        on_result=lambda result: None,
        max_wait_time=0.1,
    )


def test_a_record_that_cannot_be_removed_is_reported_as_sent_but_still_there() -> None:
    """The copy went; completing failed: replayed, not removed, and the operator is told why."""
    receiver = FakeReceiver(iter([[message(1)]]), complete_fails={1})
    [result] = run(FakeClient(), receiver, [1])
    assert (result.outcome, result.removed) == (Outcome.REPLAYED, False)
    assert "still on the queue" in result.detail


def test_others_are_held_then_abandoned_once_and_missing_records_are_kept() -> None:
    """Messages passed over are abandoned at the end (once each); a chosen one never seen is kept."""
    receiver = FakeReceiver(iter([[message(1), message(2)], [message(3)], []]))
    client = FakeClient()
    results = run(client, receiver, [2, 9])
    assert [(r.dead_letter.envelope.sequence_number, r.outcome) for r in results] == [
        (2, Outcome.REPLAYED),
        (9, Outcome.KEPT),
    ]
    assert "not received" in results[1].detail
    assert receiver.completed == [2]
    assert sorted(receiver.abandoned) == [1, 3]
    assert [json.loads(b"".join(m.body)) for m in client.sent] == [{"jobId": "j"}]


def test_a_failed_send_keeps_the_record_and_the_next_send_uses_a_new_link() -> None:
    """A send that fails abandons its record (at the end) and the next record gets a fresh sender."""
    receiver = FakeReceiver(iter([[message(1, "bad"), message(2, "good")]]))
    client = FakeClient(fail_jobs={"bad"})
    results = run(client, receiver, [1, 2])
    assert [r.outcome for r in results] == [Outcome.KEPT, Outcome.REPLAYED]
    assert "link detached" in results[0].detail
    assert (receiver.completed, receiver.abandoned, client.senders) == ([2], [1], 2)


def test_only_messages_seen_before_coming_back_ends_the_loop() -> None:
    """Expired locks bring back what was passed over: the loop stops instead of spinning."""
    again = [[message(1)] for _ in range(100)]
    receiver = FakeReceiver(iter([[message(1)], *again]))
    [result] = run(FakeClient(), receiver, [5])
    assert result.outcome is Outcome.KEPT
    assert receiver.abandoned == [1, 1]
