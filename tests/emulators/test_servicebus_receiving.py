"""Receiving through the real SDK: credit with prefetch 0, receive-and-delete, peeking, and what a
closing receiver gives back. Each scenario runs with the sync and the aio SDK at once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusReceiveMode

from tests.conftest import ServiceBusApi, ServiceBusSdks


async def test_receive_returns_at_most_max_message_count(servicebus_sdks: ServiceBusSdks) -> None:
    """With prefetch 0 a receive gets at most max_message_count messages; the rest stay queued."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages([ServiceBusMessage(f"m{n}") for n in range(5)])
        first = await receiver.receive_messages(max_message_count=3, max_wait_time=5)
        assert [m.sequence_number for m in first] == [1, 2, 3]
        rest = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
        assert [m.sequence_number for m in rest] == [4, 5]
        assert all(m.delivery_count == 0 for m in first + rest)

    await servicebus_sdks.run(scenario)


async def test_receive_from_an_empty_queue_returns_nothing(servicebus_sdks: ServiceBusSdks) -> None:
    """A receive on an empty queue returns an empty list once max_wait_time has passed."""

    async def scenario(sb: ServiceBusApi) -> None:
        receiver = await sb.receiver(sb.queues.queue)
        assert await receiver.receive_messages(max_message_count=5, max_wait_time=0.3) == []

    await servicebus_sdks.run(scenario)


async def test_expired_messages_are_never_delivered(servicebus_sdks: ServiceBusSdks) -> None:
    """A message whose time_to_live has passed is dropped: neither peeked nor received."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        # The SDK sends time_to_live in whole seconds.
        await sender.send_messages(ServiceBusMessage("short-lived", time_to_live=timedelta(seconds=1)))
        await sender.send_messages(ServiceBusMessage("durable"))
        [short, _] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert short.expires_at_utc == short.enqueued_time_utc + timedelta(seconds=1)
        deadline = time.monotonic() + 5
        while len(await receiver.peek_messages(max_message_count=10, sequence_number=1)) == 2:
            assert time.monotonic() < deadline, "the expired message is still there"
        messages = await receiver.receive_messages(max_message_count=2, max_wait_time=5)
        assert [str(m) for m in messages] == ["durable"]

    await servicebus_sdks.run(scenario)


async def test_queue_default_time_to_live_caps_a_longer_one(servicebus_sdks: ServiceBusSdks) -> None:
    """The queue's defaultMessageTimeToLive applies to a message without one and caps a longer one; a
    shorter one is kept. Service Bus docs, "Message expiration (Time to Live)": "The default expiration
    also functions as a ceiling for the TimeToLive value. Messages that have a longer TimeToLive
    expiration than the default value are silently adjusted to the defaultMessageTimeToLive value before
    being enqueued"; expires-at-utc is enqueued-time-utc + time-to-live."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_ttl  # defaultMessageTimeToLive 60 s
        sender, receiver = await asyncio.gather(sb.sender(queue), sb.receiver(queue))
        await sender.send_messages(
            [
                ServiceBusMessage("day", time_to_live=timedelta(days=1)),
                ServiceBusMessage("unset"),
                ServiceBusMessage("short", time_to_live=timedelta(seconds=10)),
            ]
        )
        messages = await receiver.receive_messages(max_message_count=3, max_wait_time=5)
        assert [(str(m), m.time_to_live) for m in messages] == [
            ("day", timedelta(seconds=60)),
            ("unset", timedelta(seconds=60)),
            ("short", timedelta(seconds=10)),
        ]
        for message in messages:
            assert message.enqueued_time_utc is not None
            assert message.time_to_live is not None
            assert message.expires_at_utc == message.enqueued_time_utc + message.time_to_live

    await servicebus_sdks.run(scenario)


async def test_receive_and_delete_removes_on_delivery(servicebus_sdks: ServiceBusSdks) -> None:
    """In RECEIVE_AND_DELETE mode a message is gone once delivered: no lock, nothing to settle."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.queue
        sender, receiver = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
        )
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        messages = await receiver.receive_messages(max_message_count=2, max_wait_time=5)
        assert [str(m) for m in messages] == ["a", "b"]
        assert [m.lock_token for m in messages] == [None, None]
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)


async def test_peek_neither_locks_nor_removes(servicebus_sdks: ServiceBusSdks) -> None:
    """Peek browses from a sequence number, in order, without locks; the messages stay receivable."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        await sender.send_messages([ServiceBusMessage(f"m{n}") for n in range(1, 4)])
        peeked = await receiver.peek_messages(max_message_count=2, sequence_number=1)
        assert [(m.sequence_number, str(m)) for m in peeked] == [(1, "m1"), (2, "m2")]
        assert all(m.state == ServiceBusMessageState.ACTIVE and m.lock_token is None for m in peeked)
        [third] = await receiver.peek_messages(max_message_count=10, sequence_number=3)
        assert str(third) == "m3"
        received = await receiver.receive_messages(max_message_count=3, max_wait_time=5)
        assert [(m.sequence_number, m.delivery_count) for m in received] == [(1, 0), (2, 0), (3, 0)]
        # Locked messages are still there to peek at.
        assert len(await receiver.peek_messages(max_message_count=10, sequence_number=1)) == 3

    await servicebus_sdks.run(scenario)


async def test_closing_a_receiver_releases_what_it_prefetched(servicebus_sdks: ServiceBusSdks) -> None:
    """On close the SDK drains its link and releases buffered messages: they come back at once,
    uncounted, while the one it handed out stays locked."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.queue
        sender, greedy, patient = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue, prefetch_count=10), sb.receiver(queue)
        )
        await sender.send_messages([ServiceBusMessage(f"m{n}") for n in range(5)])
        [handed_out] = await greedy.receive_messages(max_message_count=1, max_wait_time=5)
        await greedy.close()
        released = await patient.receive_messages(max_message_count=10, max_wait_time=5)
        assert sorted(m.sequence_number for m in released) == [
            n for n in range(1, 6) if n != handed_out.sequence_number
        ]
        assert all(m.delivery_count == 0 for m in released)

    await servicebus_sdks.run(scenario)
