"""Scheduled messages through the real SDK: hidden until their time, then delivered; cancellation.
Each scenario runs with the sync and the aio SDK at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState

from tests.conftest import ServiceBusApi, ServiceBusSdks


def _ms(moment: datetime) -> datetime:
    """AMQP timestamps carry milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def test_scheduled_message_is_hidden_until_its_time(servicebus_sdks: ServiceBusSdks) -> None:
    """schedule_messages: the message is peekable as scheduled, and delivered only from its time on,
    with a new sequence number and its activation as its enqueued time. Service Bus docs, "Message
    sequencing and timestamps": "The SequenceNumber for a scheduled message is only valid while the
    message is in this state. As the message transitions to the active state, the message is appended
    to the queue as if had been enqueued at the current instant, which includes assigning a new
    SequenceNumber." """

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        at = _ms(datetime.now(UTC) + timedelta(seconds=1.5))
        [number] = await sender.schedule_messages(ServiceBusMessage("later"), at)
        [peeked] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert (peeked.sequence_number, peeked.state) == (number, ServiceBusMessageState.SCHEDULED)
        assert peeked.scheduled_enqueue_time_utc == at
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert datetime.now(UTC) >= at
        assert str(message) == "later"
        assert message.sequence_number is not None
        assert message.sequence_number > number
        assert message.state == ServiceBusMessageState.ACTIVE
        assert message.enqueued_time_utc is not None
        assert message.enqueued_time_utc >= at
        [again] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert again.sequence_number == message.sequence_number  # the scheduled number is gone

    await servicebus_sdks.run(scenario)


async def test_message_sent_with_a_scheduled_time_waits(servicebus_sdks: ServiceBusSdks) -> None:
    """A message sent with scheduled_enqueue_time_utc (x-opt-scheduled-enqueue-time) is scheduled."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        at = _ms(datetime.now(UTC) + timedelta(minutes=5))
        await sender.send_messages(ServiceBusMessage("retry", scheduled_enqueue_time_utc=at))
        [peeked] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert (peeked.state, peeked.scheduled_enqueue_time_utc) == (ServiceBusMessageState.SCHEDULED, at)
        assert await receiver.receive_messages(max_wait_time=0.3) == []

    await servicebus_sdks.run(scenario)


async def test_cancelled_scheduled_messages_are_gone(servicebus_sdks: ServiceBusSdks) -> None:
    """cancel_scheduled_messages removes them; cancelling an unknown number is harmless."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        at = datetime.now(UTC) + timedelta(minutes=5)
        numbers = await sender.schedule_messages([ServiceBusMessage("a"), ServiceBusMessage("b")], at)
        assert numbers == [1, 2]
        await sender.cancel_scheduled_messages(numbers)
        await sender.cancel_scheduled_messages(999)
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)
