"""Peek-lock timing through the real SDK: lock expiry and redelivery, the max delivery count, renewing
locks by hand and with AutoLockRenewer. Waits are receives bounded by a deadline, never sleeps.
Each scenario runs with the sync and the aio SDK at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError

from tests.conftest import ServiceBusApi, ServiceBusSdks

LOCK = timedelta(seconds=1.5)  # lockDuration of the `short_lock` queues (aio AutoLockRenewer looks every 1 s)


async def test_locked_until_is_the_lock_duration_from_delivery(servicebus_sdks: ServiceBusSdks) -> None:
    """locked_until_utc is the delivery time plus the queue's lockDuration."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_lock
        sender, receiver = await asyncio.gather(sb.sender(queue), sb.receiver(queue))
        await sender.send_messages(ServiceBusMessage("timed"))
        before = datetime.now(UTC)
        [message] = await receiver.receive_messages(max_wait_time=5)
        after = datetime.now(UTC)
        slack = timedelta(milliseconds=50)
        assert before + LOCK - slack <= message.locked_until_utc <= after + LOCK + slack

    await servicebus_sdks.run(scenario)


async def test_expired_lock_redelivers_and_the_old_lock_is_lost(servicebus_sdks: ServiceBusSdks) -> None:
    """An unsettled message comes back when its lock expires (not before), delivery_count + 1; the old
    lock can then be neither renewed nor settled: the broker answers message-lock-lost."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_lock
        sender, receiver = await asyncio.gather(sb.sender(queue), sb.receiver(queue))
        await sender.send_messages(ServiceBusMessage("forgotten"))
        [stale] = await receiver.receive_messages(max_wait_time=5)
        [fresh] = await receiver.receive_messages(max_wait_time=5)
        assert datetime.now(UTC) >= stale.locked_until_utc
        assert (fresh.sequence_number, fresh.delivery_count) == (stale.sequence_number, 1)
        with pytest.raises(MessageLockLostError):
            await receiver.renew_message_lock(stale)  # over $management
        stale._expiry = datetime.now(UTC) + timedelta(minutes=5)  # as if the client's clock ran behind
        with pytest.raises(MessageLockLostError):
            await receiver.complete_message(stale)  # over the link: skips the SDK's own expiry check
        await receiver.complete_message(fresh)

    await servicebus_sdks.run(scenario)


async def test_max_delivery_count_dead_letters_the_message(servicebus_sdks: ServiceBusSdks) -> None:
    """After maxDeliveryCount failed deliveries the broker dead-letters with MaxDeliveryCountExceeded."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.few_deliveries  # maxDeliveryCount 2
        sender, receiver, dead_letters = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue), sb.receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        )
        await sender.send_messages(ServiceBusMessage("cursed", message_id="c-1"))
        for expected_count in (0, 1):
            [message] = await receiver.receive_messages(max_wait_time=5)
            assert message.delivery_count == expected_count
            await receiver.abandon_message(message)
        assert await receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        [dead] = await dead_letters.receive_messages(max_wait_time=5)
        assert (str(dead), dead.message_id, dead.delivery_count) == ("cursed", "c-1", 2)
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_error_description
        await dead_letters.complete_message(dead)

    await servicebus_sdks.run(scenario)


async def test_lock_expiry_counts_towards_max_delivery_count(servicebus_sdks: ServiceBusSdks) -> None:
    """An expired lock is a failed delivery too: it can be the one that dead-letters the message."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_lock  # maxDeliveryCount 3
        sender, receiver, dead_letters = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue), sb.receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
        )
        await sender.send_messages(ServiceBusMessage("unlucky"))
        for _ in range(2):
            [message] = await receiver.receive_messages(max_wait_time=5)
            await receiver.abandon_message(message)
        [last] = await receiver.receive_messages(max_wait_time=5)
        assert last.delivery_count == 2  # its lock now runs out
        [dead] = await dead_letters.receive_messages(max_wait_time=5)
        assert (dead.sequence_number, dead.dead_letter_reason) == (
            last.sequence_number,
            "MaxDeliveryCountExceeded",
        )

    await servicebus_sdks.run(scenario)


async def test_renew_lock_extends_the_lock(servicebus_sdks: ServiceBusSdks) -> None:
    """renew_message_lock moves locked_until forward, and the broker honours it."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_lock
        sender, receiver, rival = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue), sb.receiver(queue)
        )
        await sender.send_messages(ServiceBusMessage("busy"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        original = message.locked_until_utc
        renewed = await receiver.renew_message_lock(message)
        assert renewed > original
        assert message.locked_until_utc == renewed
        # Until the renewed lock runs out nobody else gets it; then the rival does.
        [taken] = await rival.receive_messages(max_wait_time=5)
        assert datetime.now(UTC) >= renewed
        assert (taken.sequence_number, taken.delivery_count) == (message.sequence_number, 1)

    await servicebus_sdks.run(scenario)


async def test_auto_lock_renewer_holds_a_message_past_its_lock(servicebus_sdks: ServiceBusSdks) -> None:
    """With AutoLockRenewer the message stays locked well past lockDuration and completes normally."""

    async def scenario(sb: ServiceBusApi) -> None:
        queue = sb.queues.short_lock
        renewer = await sb.auto_lock_renewer(max_lock_renewal_duration=30)
        sender, receiver, rival = await asyncio.gather(
            sb.sender(queue), sb.receiver(queue, auto_lock_renewer=renewer), sb.receiver(queue)
        )
        await sender.send_messages(ServiceBusMessage("long job"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        first_lock = message.locked_until_utc
        assert await rival.receive_messages(max_wait_time=3.2) == []  # over two lock durations
        assert message.locked_until_utc > first_lock
        await receiver.complete_message(message)
        await renewer.close()
        assert await rival.peek_messages(max_message_count=10, sequence_number=1) == []

    await servicebus_sdks.run(scenario)
