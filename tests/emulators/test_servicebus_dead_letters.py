"""Duplicate detection and dead-letter forwarding through the real SDK. Each scenario runs with the
sync and the aio SDK at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue

from tests.conftest import ServiceBusApi, ServiceBusSdks


async def test_duplicate_message_ids_within_the_window_are_dropped(servicebus_sdks: ServiceBusSdks) -> None:
    """With duplicateDetectionWindow, a repeated message_id is accepted and dropped (batches too)."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.dedup
        sender, receiver = await asyncio.gather(sb.sender(queue), sb.receiver(queue))
        await sender.send_messages(ServiceBusMessage("first", message_id="a"))
        await sender.send_messages(ServiceBusMessage("again", message_id="a"))
        await sender.send_messages(
            [ServiceBusMessage("b", message_id="b"), ServiceBusMessage("a?", message_id="a")]
        )
        peeked = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert [(m.message_id, str(m)) for m in peeked] == [("a", "first"), ("b", "b")]

    await servicebus_sdks.run(scenario)


async def test_scheduled_messages_count_for_duplicate_detection(servicebus_sdks: ServiceBusSdks) -> None:
    """A scheduled message's id is remembered at once: the same id sent now is dropped."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.dedup
        sender, receiver = await asyncio.gather(sb.sender(queue), sb.receiver(queue))
        at = datetime.now(UTC) + timedelta(minutes=5)
        [number] = await sender.schedule_messages(ServiceBusMessage("retry 1", message_id="job-7/1"), at)
        await sender.send_messages(ServiceBusMessage("retry 1, twice", message_id="job-7/1"))
        [peeked] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert (peeked.sequence_number, peeked.state) == (number, ServiceBusMessageState.SCHEDULED)

    await servicebus_sdks.run(scenario)


async def test_without_duplicate_detection_repeats_are_kept(servicebus_sdks: ServiceBusSdks) -> None:
    """A queue without a detection window keeps every copy."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        for _ in range(2):
            await sender.send_messages(ServiceBusMessage("same", message_id="same"))
        assert len(await receiver.peek_messages(max_message_count=10, sequence_number=1)) == 2

    await servicebus_sdks.run(scenario)


async def test_broker_dead_letters_are_forwarded_with_their_source(servicebus_sdks: ServiceBusSdks) -> None:
    """forwardDeadLetteredMessagesTo: a MaxDeliveryCountExceeded dead letter lands in the target
    queue with DeadLetterReason, DeadLetterErrorDescription and DeadLetterSource; not in the DLQ."""

    async def scenario(sb: ServiceBusApi) -> None:
        source, target = sb.queues.forwarding, sb.queues.forward_target
        sender, receiver, source_dlq, forwarded = await asyncio.gather(
            sb.sender(source),
            sb.receiver(source),
            sb.receiver(source, sub_queue=ServiceBusSubQueue.DEAD_LETTER),
            sb.receiver(target),
        )
        await sender.send_messages(ServiceBusMessage("doomed", message_id="d-1"))
        for _ in range(2):  # maxDeliveryCount 2
            [message] = await receiver.receive_messages(max_wait_time=5)
            await receiver.abandon_message(message)
        [arrived] = await forwarded.receive_messages(max_wait_time=5)
        assert (str(arrived), arrived.message_id, arrived.delivery_count) == ("doomed", "d-1", 0)
        assert arrived.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert arrived.dead_letter_error_description
        assert arrived.application_properties[b"DeadLetterSource"] == source.encode()
        assert arrived.dead_letter_source == source
        assert arrived.enqueued_sequence_number == message.sequence_number
        assert await source_dlq.peek_messages(max_message_count=10, sequence_number=1) == []
        await forwarded.complete_message(arrived)

    await servicebus_sdks.run(scenario)


async def test_explicit_dead_letters_are_forwarded_too(servicebus_sdks: ServiceBusSdks) -> None:
    """dead_letter_message on a forwarding queue sends the message, reason and all, to the target."""

    async def scenario(sb: ServiceBusApi) -> None:
        source, target = sb.queues.forwarding, sb.queues.forward_target
        sender, receiver, forwarded = await asyncio.gather(
            sb.sender(source), sb.receiver(source), sb.receiver(target)
        )
        await sender.send_messages(ServiceBusMessage("rejected", application_properties={"job": "j-1"}))
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.dead_letter_message(message, reason="InvalidMessage", error_description="no account")
        [arrived] = await forwarded.receive_messages(max_wait_time=5)
        assert (arrived.dead_letter_reason, arrived.dead_letter_error_description) == (
            "InvalidMessage",
            "no account",
        )
        assert arrived.application_properties == {
            b"job": b"j-1",
            b"DeadLetterReason": b"InvalidMessage",
            b"DeadLetterErrorDescription": b"no account",
            b"DeadLetterSource": source.encode(),
        }

    await servicebus_sdks.run(scenario)
