"""The trigger loop: receive in peek-lock mode, invoke the function, complete or abandon.

As the Functions host does with `autoCompleteMessages: true`: a function that returns completes its
message, one that raises (or exceeds functionTimeout) abandons it, so the broker redelivers it with the
delivery count + 1 and dead-letters it after the queue's max delivery count. At most
`maxConcurrentCalls` invocations run at once; locks are renewed while a function runs, for up to
`maxAutoLockRenewalDuration`. `stop()` stops receiving and lets in-flight invocations finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient, ServiceBusReceiver
from azure.servicebus.exceptions import ServiceBusError

from emulators.host._config import HostOptions
from emulators.host._messages import to_function_message

__all__ = ["QueueFunction", "TriggerLoop"]

log = logging.getLogger("emulators.host")


@dataclass(frozen=True)
class QueueFunction:
    """One Service Bus queue-triggered function of the app, its binding expressions resolved."""

    name: str
    queue: str
    connection: str  # the connection setting's name, e.g. ServiceBusConnection
    arg_name: str
    function: Callable[..., Any]


class TriggerLoop:
    """Feeds one function from its queue until `stop()`."""

    def __init__(
        self,
        target: QueueFunction,
        client: ServiceBusClient,
        options: HostOptions,
        executor: ThreadPoolExecutor,
        stats: Counter[str],
    ) -> None:
        self._target = target
        self._client = client
        self._options = options
        self._executor = executor
        self._stats = stats
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        renewer = AutoLockRenewer(max_lock_renewal_duration=self._options.max_auto_lock_renewal_duration)
        receiver = self._client.get_queue_receiver(
            self._target.queue,
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            prefetch_count=self._options.prefetch_count,
        )
        async with receiver, renewer:
            await receiver.peek_messages(max_message_count=1)  # opens the link: fail fast if missing
            self.ready.set()
            try:
                await self._receive_until_stopped(receiver, renewer)
            finally:
                if self._in_flight:
                    log.info("waiting for %d in-flight invocation(s)", len(self._in_flight))
                    await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _receive_until_stopped(self, receiver: ServiceBusReceiver, renewer: AutoLockRenewer) -> None:
        limit = self._options.max_concurrent_calls
        while not self._stopping.is_set():
            free = limit - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await receiver.receive_messages(max_message_count=free, max_wait_time=0.5)
            except ServiceBusError as exc:  # the SDK reconnects on the next call
                log.warning("receive failed on %s: %s", self._target.queue, exc)
                await _wait_or_stop(self._stopping, 1.0)
                continue
            for message in messages:
                self._stats["received"] += 1
                task = asyncio.create_task(self._invoke(receiver, renewer, message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _invoke(
        self, receiver: ServiceBusReceiver, renewer: AutoLockRenewer, message: ServiceBusReceivedMessage
    ) -> None:
        renewer.register(receiver, message)
        function_message = to_function_message(message)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._call(function_message), self._options.function_timeout)
        except Exception as exc:
            self._stats["failed"] += 1
            log.warning(
                "%s failed for message %s (delivery %s) after %.0f ms: %s: %s",
                self._target.name,
                message.message_id,
                function_message.delivery_count,
                (time.monotonic() - started) * 1000,
                type(exc).__name__,
                exc,
            )
            await self._settle(receiver.abandon_message, message, "abandoned")
        else:
            self._stats["succeeded"] += 1
            await self._settle(receiver.complete_message, message, "completed")

    async def _call(self, function_message: Any) -> None:
        kwargs = {self._target.arg_name: function_message}
        if inspect.iscoroutinefunction(self._target.function):
            await self._target.function(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, functools.partial(self._target.function, **kwargs))

    async def _settle(
        self, settle: Callable[..., Any], message: ServiceBusReceivedMessage, what: str
    ) -> None:
        try:
            await settle(message)
        except ServiceBusError as exc:  # lock lost: the broker redelivers it
            self._stats["settleFailed"] += 1
            log.warning("could not settle message %s (%s): %s", message.message_id, what, exc)
        else:
            self._stats[what] += 1


async def _wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
