"""Settling peek-locked messages through the real SDK: complete, abandon, dead-letter, defer (and the
deferred message's own settlement over $management). Each scenario runs with the sync and the aio SDK
at once. A lock the broker no longer holds: test_servicebus_locks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageNotFoundError

from tests.conftest import ServiceBusApi, ServiceBusSdks


async def test_complete_removes_the_message(servicebus_sdks: ServiceBusSdks) -> None:
    """A completed message is gone: peek finds nothing and it is never delivered again."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages(ServiceBusMessage("done"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.complete_message(message)
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        assert await receiver.receive_messages(max_wait_time=0.3) == []

    await servicebus_sdks.run(scenario)


async def test_abandon_redelivers_with_delivery_count_plus_one(servicebus_sdks: ServiceBusSdks) -> None:
    """An abandoned message is available again at once, its delivery count one higher."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages(ServiceBusMessage("again"))
        [first] = await receiver.receive_messages(max_wait_time=5)
        await receiver.abandon_message(first)
        [second] = await receiver.receive_messages(max_wait_time=5)
        assert (second.sequence_number, second.delivery_count) == (first.sequence_number, 1)
        assert second.lock_token != first.lock_token
        await receiver.complete_message(second)

    await servicebus_sdks.run(scenario)


async def test_dead_letter_keeps_reason_and_description(servicebus_sdks: ServiceBusSdks) -> None:
    """A dead-lettered message leaves the queue for its $DeadLetterQueue, with reason and description."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.queue
        sender, receiver, dead_letters = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue), sb.receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        )
        await sender.send_messages(
            ServiceBusMessage("poison", message_id="p-1", application_properties={"k": "v"})
        )
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.dead_letter_message(message, reason="BadRequest", error_description="no job id")
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        [dead] = await dead_letters.receive_messages(max_wait_time=5)
        assert (str(dead), dead.message_id) == ("poison", "p-1")
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("BadRequest", "no job id")
        assert dead.application_properties[b"k"] == b"v"
        await dead_letters.complete_message(dead)
        assert await dead_letters.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)


async def test_deferred_message_is_received_by_sequence_number(servicebus_sdks: ServiceBusSdks) -> None:
    """A deferred message is never delivered again; receive_deferred_messages locks it for settling."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages(ServiceBusMessage("later"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.defer_message(message)
        assert await receiver.receive_messages(max_wait_time=0.3) == []
        [peeked] = await receiver.peek_messages(max_message_count=10, sequence_number=1)
        assert peeked.state == ServiceBusMessageState.DEFERRED
        [deferred] = await receiver.receive_deferred_messages([message.sequence_number])
        assert str(deferred) == "later"
        assert deferred.state == ServiceBusMessageState.DEFERRED
        assert deferred.lock_token is not None
        assert deferred.locked_until_utc > datetime.now(UTC)
        await receiver.complete_message(deferred)
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)


async def test_deferred_message_settles_over_management(servicebus_sdks: ServiceBusSdks) -> None:
    """A deferred message received by number is settled over $management: abandoned it stays deferred
    (delivery_count + 1), deferred again it stays deferred, dead-lettered it moves with its reason."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.queue
        sender, receiver, dead_letters = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue), sb.receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        )
        await sender.send_messages(ServiceBusMessage("later"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.defer_message(message)
        number = message.sequence_number
        [deferred] = await receiver.receive_deferred_messages(number)
        await receiver.abandon_message(deferred)
        [again] = await receiver.receive_deferred_messages(number)
        assert again.delivery_count == 1
        await receiver.defer_message(again)
        [once_more] = await receiver.receive_deferred_messages(number)
        assert (once_more.state, once_more.delivery_count) == (ServiceBusMessageState.DEFERRED, 1)
        await receiver.dead_letter_message(once_more, reason="Gave up", error_description="deferred too long")
        [dead] = await dead_letters.receive_messages(max_wait_time=5)
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == (
            "Gave up",
            "deferred too long",
        )
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)


async def test_unknown_deferred_sequence_number_raises_not_found(servicebus_sdks: ServiceBusSdks) -> None:
    """receive_deferred_messages for a number that is not deferred raises MessageNotFoundError."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.queue
        # The SDK retries message-not-found (with backoff); one attempt is enough to see the error.
        sender, receiver = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue, client_options={"retry_total": 0})
        )
        await sender.send_messages(ServiceBusMessage("active, not deferred"))
        with pytest.raises(MessageNotFoundError):
            await receiver.receive_deferred_messages([1])
        with pytest.raises(MessageNotFoundError):
            await receiver.receive_deferred_messages([999])

    await servicebus_sdks.run(scenario)
