"""Sending to the Service Bus emulator through the real SDK: single messages, batches, properties,
queue names, unknown queues. Each scenario runs with the sync and the aio SDK at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageSizeExceededError, MessagingEntityNotFoundError

from tests.conftest import ServiceBusApi, ServiceBusSdks


async def test_message_properties_round_trip(servicebus_sdks: ServiceBusSdks) -> None:
    """What a sender sets comes back unchanged, with the broker's sequence number, times and lock."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        before = datetime.now(UTC)
        await sender.send_messages(
            ServiceBusMessage(
                b"\x00body\xff",
                message_id="order-42",
                correlation_id="corr-7",
                content_type="application/json",
                subject="delete-job",
                application_properties={"text": "value", "number": 42, "flag": True},
            )
        )
        [message] = await receiver.receive_messages(max_wait_time=5)
        after = datetime.now(UTC)
        assert b"".join(message.body) == b"\x00body\xff"
        assert message.message_id == "order-42"
        assert message.correlation_id == "corr-7"
        assert message.content_type == "application/json"
        assert message.subject == "delete-job"
        assert message.application_properties == {b"text": b"value", b"number": 42, b"flag": True}
        assert message.sequence_number == 1
        assert message.delivery_count == 0
        assert isinstance(message.lock_token, uuid.UUID)
        assert before - timedelta(seconds=1) <= message.enqueued_time_utc <= after
        assert message.locked_until_utc - message.enqueued_time_utc >= timedelta(seconds=29)
        await receiver.complete_message(message)

    await servicebus_sdks.run(scenario)


async def test_sequence_numbers_follow_send_order(servicebus_sdks: ServiceBusSdks) -> None:
    """Messages sent one by one are numbered 1, 2, 3... and received in that order."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        for body in ("one", "two", "three"):
            await sender.send_messages(ServiceBusMessage(body))
        messages = await receiver.receive_messages(max_message_count=3, max_wait_time=5)
        assert [(m.sequence_number, str(m)) for m in messages] == [(1, "one"), (2, "two"), (3, "three")]

    await servicebus_sdks.run(scenario)


async def test_batch_messages_are_enqueued_one_by_one(servicebus_sdks: ServiceBusSdks) -> None:
    """A batch of 200 becomes 200 messages, in order, each with its own properties."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        batch = await sender.create_message_batch()
        for n in range(200):
            batch.add_message(
                ServiceBusMessage(f"m{n}", message_id=f"id-{n}", application_properties={"n": n})
            )
        await sender.send_messages(batch)
        peeked = await receiver.peek_messages(max_message_count=250, sequence_number=1)
        assert [str(m) for m in peeked] == [f"m{n}" for n in range(200)]
        assert [m.message_id for m in peeked] == [f"id-{n}" for n in range(200)]
        assert [m.application_properties[b"n"] for m in peeked] == list(range(200))
        assert [m.sequence_number for m in peeked] == list(range(1, 201))

    await servicebus_sdks.run(scenario)


async def test_a_list_of_messages_is_one_batch(servicebus_sdks: ServiceBusSdks) -> None:
    """send_messages([...]) (which the SDK sends as one batch transfer) enqueues each message."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        messages = await receiver.receive_messages(max_message_count=2, max_wait_time=5)
        assert [str(m) for m in messages] == ["a", "b"]

    await servicebus_sdks.run(scenario)


async def test_queue_names_ignore_case(servicebus_sdks: ServiceBusSdks) -> None:
    """A queue is the same entity whatever the case of its name."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(
            sb.sender(sb.queues.queue.upper()), sb.receiver(sb.queues.queue)
        )
        await sender.send_messages(ServiceBusMessage("loud"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "loud"

    await servicebus_sdks.run(scenario)


async def test_large_messages_round_trip_in_many_frames(servicebus_sdks: ServiceBusSdks) -> None:
    """Messages and batches near the 256 KB limit cross in many frames, both ways, intact."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        big = bytes(range(256)) * 800  # 200 KiB
        await sender.send_messages(ServiceBusMessage(big))
        batch = await sender.create_message_batch()
        for n in range(4):
            batch.add_message(ServiceBusMessage(bytes([n]) * 60_000))
        await sender.send_messages(batch)
        messages = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert [b"".join(m.body) for m in messages] == [big] + [bytes([n]) * 60_000 for n in range(4)]

    await servicebus_sdks.run(scenario)


async def test_messages_over_the_size_limit_are_refused(servicebus_sdks: ServiceBusSdks) -> None:
    """The link advertises 256 KB (Standard tier): the SDK refuses a bigger message before sending."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender = await sb.sender(sb.queues.queue)
        with pytest.raises(MessageSizeExceededError):
            await sender.send_messages(ServiceBusMessage(b"x" * 262_145))

    await servicebus_sdks.run(scenario)


@pytest.mark.parametrize("side", ["sender", "receiver"])
async def test_unknown_queue_raises_entity_not_found(servicebus_sdks: ServiceBusSdks, side: str) -> None:
    """An undeclared queue is never created: opening a link to it raises MessagingEntityNotFoundError
    at once (not after the SDK's 60 s timeout)."""

    async def scenario(sb: ServiceBusApi) -> None:
        started = time.monotonic()
        with pytest.raises(MessagingEntityNotFoundError, match="no-such-queue"):
            await (sb.sender("no-such-queue") if side == "sender" else sb.receiver("no-such-queue"))
        assert time.monotonic() - started < 10

    await servicebus_sdks.run(scenario)
