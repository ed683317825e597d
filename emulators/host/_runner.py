"""The trigger loop: receive in peek-lock mode, invoke the function, complete or abandon.

As the Functions host does with `autoCompleteMessages: true`: a function that returns completes its
message, one that raises abandons it (one that exceeds functionTimeout restarts the "worker":
``_worker``), so the broker redelivers it with the
delivery count + 1 and dead-letters it after the queue's max delivery count. At most
`maxConcurrentCalls` invocations run at once; locks are renewed while a function runs, for up to
`maxAutoLockRenewalDuration`. `stop()` stops receiving and lets in-flight invocations finish.

Two limits of the aio SDK shape this loop (both measured under the chaos run, ``bench/chaos.py``). It
numbers a session's transfers with an await in between, so two management requests made at once on one
receiver (lock renewals) can carry the same delivery-id, and the broker closes the connection for it
("sequencing error, expected delivery-id 8, got 7"): renewal requests go one at a time, each renewing
every lock due by then (about 10 ms each;
settlements are not transfers, and stay concurrent: one at a time they take 0.2 s each). And it
reopens a failed receiver inside whichever call comes next, so with settlements and renewals calling it
concurrently one call tears the handler down while another reopens it, again and again: after a failed
receive the loop retires that receiver and opens a new one. Messages in flight on a retired receiver can
no longer be settled: the broker delivers them again when their locks expire, as it would to the real
host.

A third limit sets the pace. The SDK (7.x, pyamqp) waits for the broker's echo of each settlement by
reading the connection's socket itself, and reads and writes share one lock that a read holds while it
waits for a frame (up to ``socket_timeout``, 0.2 s): with the receive loop and 64 settlements reading at
once, each disposition waited 0.2-0.4 s to be written, and an invocation held its slot for it (105
messages/s at 64 concurrent calls, the host using a tenth of a core). So the loop sends each disposition
without waiting for the echo (``_SETTLE_WITHOUT_ECHO``). What the echo would tell is a lock that expired
in the broker before the disposition arrived: the broker then ignores the disposition and delivers the
message again when the lock expires, the same end as a settlement that fails here. A lock the SDK
already knows to have expired still raises (``MessageLockLostError``) and counts as ``settleFailed``.
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
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver
from azure.servicebus.exceptions import ServiceBusError

from emulators.host._config import HostOptions
from emulators.host._locks import LockKeeper, Receiver
from emulators.host._messages import to_function_message
from emulators.host._worker import Worker

__all__ = ["QueueFunction", "TriggerLoop", "WorkerRestarted"]

log = logging.getLogger("emulators.host")

_RECEIVE_WAIT = 0.5  # seconds a receive waits for messages
# The receiver's switch for awaiting each settlement's outcome (azure-servicebus 7.15,
# azure/servicebus/_common/receiver_mixins.py); see the module docstring for why it is turned off.
_SETTLE_WITHOUT_ECHO = "_await_settlement_outcome"


class WorkerRestarted(Exception):
    """An invocation ended by a worker restart (a function timeout, this one's or another's)."""


@dataclass(frozen=True)
class QueueFunction:
    """One Service Bus queue-triggered function of the app, its binding expressions resolved."""

    name: str
    queue: str
    connection: str  # the connection setting's name, e.g. ServiceBusConnection
    arg_name: str
    function: Callable[..., Any]
    data_type: str | None = None  # the trigger's dataType: "binary", "string", "stream" or unset


class TriggerLoop:
    """Feeds one function from its queue until `stop()`."""

    def __init__(
        self,
        target: QueueFunction,
        client: ServiceBusClient,
        options: HostOptions,
        executor: ThreadPoolExecutor,
        stats: Counter[str],
        *,
        worker: Worker,
    ) -> None:
        self._target = target
        self._worker = worker
        self._client = client
        self._options = options
        self._executor = executor
        self._stats = stats
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()  # failed receivers being closed
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        receiver = self._new_receiver()
        try:
            await receiver.sdk.peek_messages(max_message_count=1)  # opens the link: fail fast if missing
            self.ready.set()
            while not self._stopping.is_set():
                try:
                    await self._receive_until_stopped(receiver)
                except (ServiceBusError, ValueError) as exc:
                    log.warning("receive failed on %s: %s; reconnecting", self._target.queue, exc)
                    self._retire(receiver)
                    receiver = await self._reconnect()
        finally:
            if self._in_flight:
                log.info("waiting for %d in-flight invocation(s)", len(self._in_flight))
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await _close_quietly(receiver.sdk)
            await asyncio.gather(*self._retiring)

    def _new_receiver(self) -> Receiver:
        sdk = self._client.get_queue_receiver(
            self._target.queue,
            receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            prefetch_count=self._options.prefetch_count,
        )
        if hasattr(sdk, _SETTLE_WITHOUT_ECHO):
            setattr(sdk, _SETTLE_WITHOUT_ECHO, False)
        else:  # another SDK version: settlements still work, one socket read-timeout slower
            log.warning("this azure-servicebus awaits every settlement's echo: the host will be slow")
        return Receiver(sdk)

    def _retire(self, receiver: Receiver) -> None:
        """Close a failed receiver in the background; its in-flight messages come back on their own."""
        closing = asyncio.create_task(_close_quietly(receiver.sdk))
        self._retiring.add(closing)
        closing.add_done_callback(self._retiring.discard)

    async def _reconnect(self) -> Receiver:
        """A new receiver, its link opened with the SDK's own timeouts (a receive's 0.5 s is too short
        to connect again on a busy machine); once stopping, whatever there is."""
        while True:
            receiver = self._new_receiver()
            try:
                await receiver.sdk.peek_messages(max_message_count=1)
            except ServiceBusError as exc:
                log.warning("reconnecting to %s failed: %s", self._target.queue, exc)
                await _close_quietly(receiver.sdk)
                await _wait_or_stop(self._stopping, 1.0)
                if not self._stopping.is_set():
                    continue
            return receiver

    async def _receive_until_stopped(self, receiver: Receiver) -> None:
        """Receive and start invocations until stopped; a failed receive raises."""
        limit = self._options.max_concurrent_calls
        while not self._stopping.is_set():
            free = limit - len(self._in_flight)
            if free <= 0:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            messages = await receiver.sdk.receive_messages(
                max_message_count=free, max_wait_time=_RECEIVE_WAIT
            )
            for message in messages:
                self._stats["received"] += 1
                task = asyncio.create_task(self._invoke(receiver, message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _invoke(self, receiver: Receiver, message: ServiceBusReceivedMessage) -> None:
        started = time.monotonic()
        keeper = LockKeeper(receiver, message, self._options.max_auto_lock_renewal_duration)
        try:
            # Bound as the real host binds it: a message it cannot bind fails the invocation.
            function_message = to_function_message(message, self._target.data_type)
            await self._run(function_message)
        except Exception as exc:
            self._stats["failed"] += 1
            log.warning(
                "%s failed for message %s (delivery %s) after %.0f ms: %s: %s",
                self._target.name,
                message.message_id,
                (message.delivery_count or 0) + 1,
                (time.monotonic() - started) * 1000,
                type(exc).__name__,
                exc,
            )
            outcome = "abandoned"
        else:
            self._stats["succeeded"] += 1
            outcome = "completed"
        finally:
            await keeper.stop()
        settle = receiver.sdk.complete_message if outcome == "completed" else receiver.sdk.abandon_message
        await self._settle(settle, message, outcome)

    async def _run(self, function_message: Any) -> None:
        """One invocation in the worker; past functionTimeout the worker restarts (``_worker``), which
        ends this invocation and every other in flight: each raises ``WorkerRestarted``."""
        call = self._worker.start(self._target.name, functools.partial(self._call, function_message))
        done, _ = await asyncio.wait({call}, timeout=self._options.function_timeout)
        if not done:
            self._worker.restart(f"{self._target.name} for message {function_message.message_id}")
        try:
            await call
        except asyncio.CancelledError:
            if self._worker.lost(call):
                raise WorkerRestarted("the worker restarted after a function timeout") from None
            raise

    async def _call(self, function_message: Any, function: Callable[..., Any]) -> None:
        kwargs = {self._target.arg_name: function_message}
        if inspect.iscoroutinefunction(function):
            await function(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, functools.partial(function, **kwargs))

    async def _settle(
        self, settle: Callable[..., Any], message: ServiceBusReceivedMessage, what: str
    ) -> None:
        try:
            await settle(message)
        # Lock lost, or the link is down (the SDK raises ValueError while it is not running): either way
        # the broker redelivers the message when its lock expires.
        except (ServiceBusError, ValueError) as exc:
            self._stats["settleFailed"] += 1
            log.warning("could not settle message %s (%s): %s", message.message_id, what, exc)
        else:
            self._stats[what] += 1


async def _wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _close_quietly(receiver: ServiceBusReceiver) -> None:
    """Close a receiver whose connection may be gone: that can fail or hang, and nothing depends on it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(receiver.close(), 10)
