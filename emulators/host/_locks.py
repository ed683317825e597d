"""Lock renewal for the local host: one management request at a time per receiver, each renewing every
lock due by then, and a timer per message rather than a task (see ``_runner`` for why one at a time)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus._common.constants import MGMT_RESPONSE_MESSAGE_EXPIRATION
from azure.servicebus._common.utils import utc_from_timestamp
from azure.servicebus.aio import ServiceBusReceiver
from azure.servicebus.exceptions import ServiceBusError

__all__ = ["LockKeeper", "Receiver"]

log = logging.getLogger("emulators.host")


@dataclass
class Receiver:
    """An SDK receiver, and its lock renewals: one management request at a time, each renewing every
    lock that came due meanwhile (one at a time, 64 locks of 1.5 s took longer than the 0.75 s left to
    renew them on a loaded machine, and messages were delivered twice)."""

    sdk: ServiceBusReceiver
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    due: list[tuple[ServiceBusReceivedMessage, asyncio.Future[None]]] = field(default_factory=list)

    async def renew(self, message: ServiceBusReceivedMessage) -> None:
        """Renew the message's lock along with every other that is due; raise as the SDK does."""
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.due.append((message, waiting))
        if not self.lock.locked():
            async with self.lock:  # this call sends the requests until nothing is due
                while self.due:
                    batch, self.due = self.due, []
                    await self._renew_batch(batch)
        await waiting

    async def _renew_batch(self, batch: list[tuple[ServiceBusReceivedMessage, asyncio.Future[None]]]) -> None:
        if len(batch) > 1:
            try:
                # The SDK's own request (renew_message_lock sends it with one token): the broker answers
                # one expiry per token, in order, or fails the whole request.
                answer = await self.sdk._renew_locks(*(str(message.lock_token) for message, _ in batch))
                expirations = answer[MGMT_RESPONSE_MESSAGE_EXPIRATION]
            except (ServiceBusError, ValueError):
                pass  # a lock in the batch is lost: find out which, one at a time
            else:
                for (message, waiting), expiry in zip(batch, expirations, strict=True):
                    message._expiry = utc_from_timestamp(expiry / 1000.0)
                    waiting.set_result(None)
                return
        for message, waiting in batch:
            try:
                await self.sdk.renew_message_lock(message)
            except (ServiceBusError, ValueError) as exc:
                waiting.set_exception(exc)
            else:
                waiting.set_result(None)


class LockKeeper:
    """Renews one message's lock halfway through each lock period until ``stop()``, for up to
    maxAutoLockRenewalDuration. Nothing runs between renewals but a timer; ``stop()`` cancels it and
    waits for a renewal under way (cut off halfway, it would leave the SDK's handler in disorder)."""

    def __init__(self, receiver: Receiver, message: ServiceBusReceivedMessage, duration: float) -> None:
        self._receiver = receiver
        self._message = message
        self._give_up = time.monotonic() + duration
        self._stopped = False
        self._renewing: asyncio.Task[None] | None = None
        self._timer = self._schedule()

    def _schedule(self) -> asyncio.TimerHandle | None:
        if time.monotonic() >= self._give_up:
            return None
        locked_until = self._message.locked_until_utc
        left = (locked_until - datetime.now(UTC)).total_seconds() if locked_until else 0.0
        return asyncio.get_running_loop().call_later(max(left / 2, 0.05), self._due)

    def _due(self) -> None:
        if not self._stopped:
            self._renewing = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            await self._receiver.renew(self._message)
        except (ServiceBusError, ValueError) as exc:  # lost: the broker delivers it again
            log.warning("could not renew the lock of message %s: %s", self._message.message_id, exc)
            return
        if not self._stopped:
            self._timer = self._schedule()

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._renewing is not None:
            await self._renewing
