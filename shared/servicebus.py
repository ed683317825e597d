"""Sending to Service Bus queues: one async client per event loop, one sender per queue, created on
first use. azure.servicebus is imported only then, so a process whose messages all succeed never pays
for it (cold start, memory).

A send either succeeds or raises: the caller must not complete its message until it has returned. A send
given `within` seconds raises `SendTimeoutError` when it cannot finish in that time, the wait for the
queue's send lock and the SDK's own retries included (the invocation's deadline, contract section 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.settings import ServiceBusConnection

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

__all__ = [
    "CLIENT_RETRY_OPTIONS",
    "MAX_MESSAGE_ID",
    "OutgoingMessage",
    "QueueSender",
    "SendTimeoutError",
    "shorten_message_id",
]

MAX_MESSAGE_ID = 128  # Service Bus's limit
# The SDK retries a failed operation retry_total times, waiting backoff_factor * 2^n (at most backoff_max)
# seconds between tries (azure-servicebus ServiceBusClient keywords; defaults 3, 0.8, 120). Bounded so that
# its retries fit inside an invocation; `send_messages(timeout=...)` bounds the whole operation, retries
# included, and an asyncio timeout around it all bounds what the SDK does not (opening the link, the lock).
# Measured against the local emulator with stallSendRate=1: with the SDK's defaults and no timeout, a send
# the namespace never answers was still waiting after 40 s.
CLIENT_RETRY_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 4,
    "retry_mode": "exponential",
}


class SendTimeoutError(TimeoutError):
    """A send that could not finish in the time it was given; the message may or may not have been taken
    (the caller's message comes back either way, and every message sent has a deterministic id)."""


def shorten_message_id(message_id: str) -> str:
    """Ids over 128 characters become a prefix plus a hash of the whole id: deterministic, so
    duplicate detection still recognises a second copy."""
    if len(message_id) <= MAX_MESSAGE_ID:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:40]
    return f"{message_id[: MAX_MESSAGE_ID - len(digest) - 1]}~{digest}"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: bytes
    message_id: str
    content_type: str | None = None
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: dict[str, str | int | bool] = field(default_factory=dict)
    scheduled_enqueue_time_utc: datetime | None = None


class QueueSender:
    """Sends `OutgoingMessage`s; create it inside the event loop that uses it."""

    def __init__(self, connection: ServiceBusConnection, *, client_id: str | None = None) -> None:
        self._connection = connection
        self._client_id = client_id
        self._client: ServiceBusClient | None = None
        self._senders: dict[str, ServiceBusSender] = {}
        self._lock = asyncio.Lock()
        # One send at a time per queue: the aio sender is not safe for concurrent sends (measured:
        # 20 concurrent first sends -> "Handler failed: 'NoneType' object has no attribute
        # 'client_ready_async'" and the handler shuts down). Sends happen only on failures and retries.
        self._send_locks: dict[str, asyncio.Lock] = {}
        # Broken senders being closed: in the background, since closing a link the broker stopped answering
        # can take as long as the SDK's own timeouts, and the send that broke must raise within its time.
        self._closing: set[asyncio.Task[None]] = set()

    def _discard(self, sender: ServiceBusSender) -> None:
        task = asyncio.ensure_future(_close_quietly(sender))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _make_client(self) -> ServiceBusClient:
        from azure.servicebus.aio import ServiceBusClient  # noqa: PLC0415 - only when needed

        if self._connection.connection_string is not None:
            return ServiceBusClient.from_connection_string(
                self._connection.connection_string, **CLIENT_RETRY_OPTIONS
            )
        from shared.identity import managed_identity_credential  # noqa: PLC0415 - azure.identity is lazy

        credential = managed_identity_credential(self._client_id)
        namespace = self._connection.fully_qualified_namespace or ""  # settings guarantee one form
        return ServiceBusClient(namespace, credential, **CLIENT_RETRY_OPTIONS)

    async def _sender(self, queue: str) -> ServiceBusSender:
        sender = self._senders.get(queue)
        if sender is None:
            async with self._lock:
                sender = self._senders.get(queue)
                if sender is None:
                    if self._client is None:
                        self._client = self._make_client()
                    sender = self._client.get_queue_sender(queue)
                    # Open it here, once: concurrent first sends on an unopened sender race to open
                    # the link, and all but one fail.
                    try:
                        await sender.__aenter__()
                    except BaseException:  # cut off by a timeout, or failed: not kept half-open
                        self._discard(sender)
                        raise
                    self._senders[queue] = sender
        return sender

    async def send(self, queue: str, message: OutgoingMessage, *, within: float | None = None) -> None:
        """Send one message (scheduled if it says so). Raises if Service Bus did not take it, and
        `SendTimeoutError` if it could not `within` that many seconds (None: the SDK's own bounds)."""
        from azure.servicebus import ServiceBusMessage  # noqa: PLC0415

        properties: dict[str | bytes, Any] = dict(message.application_properties.items())
        outgoing = ServiceBusMessage(
            message.body,
            message_id=shorten_message_id(message.message_id),
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            subject=message.subject,
            application_properties=properties,
            scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
        )
        if within is not None and within <= 0:
            raise SendTimeoutError(f"no time left to send to queue {queue!r}")
        ends = None if within is None else asyncio.get_running_loop().time() + within
        try:
            async with asyncio.timeout_at(ends) as limit:
                async with self._send_locks.setdefault(queue, asyncio.Lock()):
                    await self._send(queue, outgoing, ends)
        except TimeoutError:
            if not limit.expired():
                raise
            raise SendTimeoutError(
                f"sending to queue {queue!r} did not finish within {within:.1f} s"
                " (waiting behind other sends and the SDK's retries included)"
            ) from None

    async def _send(self, queue: str, outgoing: Any, ends: float | None) -> None:
        sender = await self._sender(queue)
        left = None if ends is None else ends - asyncio.get_running_loop().time()
        try:
            # The SDK's own bound on the whole send, its retries included (it refuses a timeout <= 0).
            await sender.send_messages(outgoing, timeout=max(left, 0.001) if left is not None else None)
        except BaseException:
            # A broken link is not reused: the next send opens a fresh one.
            if self._senders.get(queue) is sender:
                del self._senders[queue]
                self._discard(sender)
            raise

    async def close(self) -> None:
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            await _close_quietly(sender)
        if self._closing:
            await asyncio.wait(self._closing, timeout=10)  # broken links: bounded, they may never answer
        if self._client is not None:
            await self._client.close()
            self._client = None


async def _close_quietly(sender: ServiceBusSender) -> None:
    with contextlib.suppress(Exception):  # closing a broken sender may fail; nothing to do about it
        await sender.close()
