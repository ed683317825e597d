"""The AMQP side: a bare proton ``Handler`` that maps links to entities and frames to entity operations.

Not ``MessagingHandler``: it settles deliveries without sending their outcome, and the SDK waits for
the echo of every settlement. Which link does what: ``_links``; a link to an entity also needs a token
put on ``$cbs`` on the same connection (``_auth``). A refused link is attached with null
source and target, then detached with the error: the SDK raises the detach's condition only when the
attach did not complete the link.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from proton import (
    Condition,
    Connection,
    Delivery,
    Disposition,
    Endpoint,
    Event,
    Handler,
    Link,
    Message,
    Session,
    Terminus,
)

from emulators.servicebus._amqp import AmqpDecodeError
from emulators.servicebus._auth import Grants, Keys
from emulators.servicebus._entity import Entity, LockLost, Namespace, Outcome
from emulators.servicebus._links import Kind, LinkRole, amqp_error, role_for, role_of
from emulators.servicebus._management import cbs_reply, management_reply
from emulators.servicebus._message import StoredMessage, parse_transfer

__all__ = ["MAX_MESSAGE_SIZE", "Broker"]

log = logging.getLogger("emulators.servicebus")

MAX_MESSAGE_SIZE = 256 * 1024  # Standard tier; the SDK sizes its batches from it
_PRODUCER_CREDIT = 1000
_LOCK_LOST = "com.microsoft:message-lock-lost"
_UNAUTHORIZED = "amqp:unauthorized-access"  # a link without a token that covers its entity
# A send refused by ``rejectSendRate``: Service Bus's QuotaExceeded (a full queue). The SDK raises it from
# send_messages as ServiceBusQuotaExceededError at once: the SDK retries (3 times by default, with
# backoff) every condition but those in its no_retry list, e.g. amqp:internal-error or
# com.microsoft:server-busy; amqp:resource-limit-exceeded is in that list. So a refusal is one failed send.
_SEND_REFUSED = "amqp:resource-limit-exceeded"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Lock:
    """What an unsettled outgoing delivery stands for."""

    entity: Entity
    token: uuid.UUID


def _lock_of(delivery: Delivery) -> _Lock | None:
    lock = getattr(delivery, "sb_lock", None)
    return lock if isinstance(lock, _Lock) else None


def _new_delivery(link: Link, tag: bytes) -> Delivery:
    return link.delivery(tag)  # type: ignore[arg-type] # proton accepts binary tags; stubs say str


class Broker(Handler):
    """All connections of one emulator process; state lives in ``namespace``."""

    def __init__(self, namespace: Namespace, keys: Keys | None = None) -> None:
        self.namespace = namespace
        self.keys = keys if keys is not None else Keys()  # the shared access keys tokens are checked with
        self._consumers: dict[Entity, list[Link]] = {}
        self._reply_links: dict[tuple[Session, str], Link] = {}
        self._tags = itertools.count()

    # --- endpoints ---------------------------------------------------------------------------
    def on_connection_remote_open(self, event: Event) -> None:
        connection = event.connection
        if connection is not None and connection.state & Endpoint.LOCAL_UNINIT:
            connection.container = "servicebus-emulator"
            connection.open()

    def on_session_remote_open(self, event: Event) -> None:
        session = event.session
        if session is not None and session.state & Endpoint.LOCAL_UNINIT:
            session.open()

    def on_link_remote_open(self, event: Event) -> None:
        if event.link is not None:
            self._attach(event.link)
            self._flush()

    def on_link_remote_close(self, event: Event) -> None:
        closing = event.link
        if closing is None:
            return
        self._forget(lambda link: link == closing)
        if not closing.state & Endpoint.LOCAL_CLOSED:
            closing.close()

    on_link_remote_detach = on_link_remote_close

    def on_session_remote_close(self, event: Event) -> None:
        closing = event.session
        if closing is None:
            return
        self._forget(lambda link: link.session == closing)
        if not closing.state & Endpoint.LOCAL_CLOSED:
            closing.close()

    def on_connection_remote_close(self, event: Event) -> None:
        closing = event.connection
        if closing is None:
            return
        self._forget(lambda link: link.connection == closing)
        if not closing.state & Endpoint.LOCAL_CLOSED:
            closing.close()

    def on_transport_closed(self, event: Event) -> None:
        gone = event.connection
        if gone is not None:
            self._forget(lambda link: link.connection == gone)

    def _forget(self, matches: Callable[[Link], bool]) -> None:
        """Drop consumers and reply links that ``matches``; their locks stay until they expire."""
        for entity, links in list(self._consumers.items()):
            kept = [link for link in links if not matches(link)]
            if kept:
                self._consumers[entity] = kept
            else:
                del self._consumers[entity]
        for key, link in list(self._reply_links.items()):
            if matches(link):
                del self._reply_links[key]

    # --- attach ------------------------------------------------------------------------------
    def _attach(self, link: Link) -> None:
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        role = role_for(self.namespace, link)
        if isinstance(role, LinkRole) and role.entity is not None:
            role = self._authorized(link, role)
        if isinstance(role, Condition):
            log.info("refusing link %r: %s", link.name, role.description)
            link.source.type = link.target.type = Terminus.UNSPECIFIED
            link.open()
            link.condition = role
            link.close()
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.sb_role = role
        log.info("%s link %r attached to %r", role.kind.value, link.name, role.node)
        if role.kind is Kind.PRODUCER:
            link.max_message_size = MAX_MESSAGE_SIZE
        link.open()
        if link.is_receiver:
            link.flow(_PRODUCER_CREDIT)
        elif role.kind is Kind.CONSUMER and role.entity is not None:
            self._consumers.setdefault(role.entity, []).append(link)
            self.namespace.dirty.add(role.entity)
        else:
            self._reply_links[(link.session, role.node)] = link

    def _authorized(self, link: Link, role: LinkRole) -> LinkRole | Condition:
        """The role, if a token put on this connection covers its entity; else Service Bus's refusal
        (``_auth``), which the SDK raises as ServiceBusAuthorizationError."""
        path = role.entity.path if role.entity is not None else role.node
        if _grants(link.connection).allow(path, time.time()):
            return role
        claim = "Send" if role.kind is Kind.PRODUCER else "Listen"
        terminus = link.remote_target if link.is_receiver else link.remote_source
        address = terminus.address or ""
        resource = f"sb://{address.split('://', 1)[1]}" if "://" in address else address
        return amqp_error(
            _UNAUTHORIZED,
            f"Unauthorized access. '{claim}' claim(s) are required to perform this operation. "
            f"Resource: '{resource}'.",
        )

    # --- flow and deliveries -----------------------------------------------------------------
    def on_link_flow(self, event: Event) -> None:
        role = None if event.link is None else role_of(event.link)
        if role is not None and role.kind is Kind.CONSUMER and role.entity is not None:
            self.namespace.dirty.add(role.entity)
            self._flush()

    def on_delivery(self, event: Event) -> None:
        delivery, link = event.delivery, event.link
        if delivery is None or link is None:
            return
        if link.is_receiver:
            self._incoming(link, delivery)
        else:
            self._settlement(delivery)
        self._flush()

    def _incoming(self, link: Link, delivery: Delivery) -> None:
        """A transfer from the client: messages to enqueue, or a $cbs/$management request."""
        if delivery.aborted:
            delivery.settle()
            return
        if delivery.partial:
            return  # the rest of a multi-frame message is still to come
        payload = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        role = role_of(link)
        now = now_ms()
        if role is not None and role.kind is Kind.PRODUCER and role.entity is not None:
            if role.entity.queue.stalls_send():  # a test fault: never answered, never settled, not stored
                if link.credit < _PRODUCER_CREDIT // 2:
                    link.flow(_PRODUCER_CREDIT - link.credit)
                return
            self._enqueue(role.entity, delivery, payload, now)
        elif role is not None:
            self._answer(link, role, payload, now)
            delivery.update(Disposition.ACCEPTED)
        delivery.settle()
        if link.credit < _PRODUCER_CREDIT // 2:
            link.flow(_PRODUCER_CREDIT - link.credit)

    def _enqueue(self, entity: Entity, delivery: Delivery, payload: bytes, now: int) -> None:
        """Accept a sent message (or batch) into ``entity``, or reject it: too big, malformed, or refused
        on purpose (``rejectSendRate``: a batch is refused whole, as Service Bus stores all or none)."""
        if entity.queue.refuses_send():
            name = entity.queue.settings.name
            _reject(
                delivery,
                _SEND_REFUSED,
                f"The maximum entity size has been reached or exceeded for Queue: '{name}' "
                "(refused by the emulator's rejectSendRate).",
            )
            return
        if len(payload) > MAX_MESSAGE_SIZE:
            size = f"the message is {len(payload)} bytes; the limit is {MAX_MESSAGE_SIZE}"
            _reject(delivery, "amqp:link:message-size-exceeded", size)
            return
        try:
            messages = parse_transfer(payload)
        except (AmqpDecodeError, IndexError) as error:
            _reject(delivery, "amqp:decode-error", f"malformed message: {error}")
            return
        for message in messages:
            entity.queue.send(message, now)
        delivery.update(Disposition.ACCEPTED)

    def _answer(self, link: Link, role: LinkRole, payload: bytes, now: int) -> None:
        request = Message()
        try:
            request.decode(payload)
        except Exception:
            log.warning("undecodable request on %r dropped", role.node)
            return
        entity = role.entity
        if entity is None:
            reply = cbs_reply(request, self.keys, _grants(link.connection), now / 1000)
        else:
            reply = management_reply(entity, request, now)
        reply_link = self._reply_links.get((link.session, role.node))
        if reply_link is None:
            log.warning("no reply link for %r; answer dropped", role.node)
            return
        delivery = _new_delivery(reply_link, next(self._tags).to_bytes(8, "big"))
        reply_link.stream(reply.encode())
        reply_link.advance()
        delivery.settle()

    def _settlement(self, delivery: Delivery) -> None:
        """The client's outcome for a delivered message: apply it, then echo it settled.

        accepted = complete; modified{delivery-failed} = abandon; modified{undeliverable-here} = defer;
        rejected = dead-letter (reason in the error's info); released = back without counting.
        A lock that is gone is answered ``rejected`` with ``com.microsoft:message-lock-lost``.
        """
        lock = _lock_of(delivery)
        if lock is None:
            if delivery.remote_settled:
                delivery.settle()
            return
        remote = delivery.remote
        state = delivery.remote_state
        if state == Disposition.ACCEPTED:
            outcome = Outcome.COMPLETE
        elif state == Disposition.REJECTED:
            outcome = Outcome.DEAD_LETTER
        elif state == Disposition.MODIFIED and remote.undeliverable:
            outcome = Outcome.DEFER
        elif state == Disposition.MODIFIED and remote.failed:
            outcome = Outcome.ABANDON
        elif state in (Disposition.MODIFIED, Disposition.RELEASED) or delivery.remote_settled:
            outcome = Outcome.RELEASE
        else:
            return  # no outcome yet
        reason, description = _dead_letter_details(remote.condition)
        try:
            lock.entity.settle(lock.token, outcome, now_ms(), reason=reason, description=description)
        except LockLost as lost:
            delivery.local.condition = amqp_error(_LOCK_LOST, str(lost))
            state = Disposition.REJECTED
        else:
            if state == Disposition.MODIFIED:
                delivery.local.failed = remote.failed
                delivery.local.undeliverable = remote.undeliverable
        if state is not None:
            delivery.update(state)
        delivery.settle()
        delivery.sb_lock = None

    def _pump(self, entity: Entity) -> None:
        """Hand available messages to the entity's consumers, round-robin, while they have credit."""
        links = self._consumers.get(entity)
        if not links:
            return
        ready = deque(link for link in links if link.credit > 0)
        now = now_ms()
        while ready:
            link = ready.popleft()
            role = role_of(link)
            presettled = role is not None and role.presettled
            message = entity.acquire(now, lock=not presettled)
            if message is None:
                break
            self._deliver(link, entity, message, presettled=presettled)
            if link.credit > 0:
                ready.append(link)
        for link in links:
            if link.drain_mode and link.credit > 0:
                link.drained()  # nothing more to send: hand the rest of the credit back

    def _deliver(self, link: Link, entity: Entity, message: StoredMessage, *, presettled: bool) -> None:
        token = message.lock_token
        # The SDK reads the lock token from the tag: UUID(bytes_le=tag).
        tag = token.bytes_le if token is not None else next(self._tags).to_bytes(8, "big")
        delivery = _new_delivery(link, tag)
        link.stream(message.to_wire(locked=not presettled))
        link.advance()
        if token is None:
            delivery.settle()
        else:
            delivery.sb_lock = _Lock(entity, token)

    # --- timers ------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """When the next lock expires or scheduled message comes due (epoch seconds), if any."""
        due = self.namespace.next_timer()
        return None if due is None else due / 1000

    def on_time(self, now: float) -> None:
        """Fire what is due (the loop calls this after every wake-up), then deliver."""
        due = self.namespace.next_timer()
        if due is not None and due <= now * 1000:
            self.namespace.run_timers(int(now * 1000))
            self._flush()

    def _flush(self) -> None:
        """Hand messages to the consumers of every entity that gained some."""
        dirty = self.namespace.dirty
        while dirty:
            self._pump(dirty.pop())


def _grants(connection: Connection) -> Grants:
    """The tokens put on ``connection`` (kept on proton's object: they go with the connection)."""
    grants = getattr(connection, "sb_grants", None)
    if not isinstance(grants, Grants):
        grants = Grants()
        connection.sb_grants = grants
    return grants


def _reject(delivery: Delivery, condition: str, description: str) -> None:
    delivery.local.condition = amqp_error(condition, description)
    delivery.update(Disposition.REJECTED)


def _dead_letter_details(condition: Condition | None) -> tuple[str | None, str | None]:
    """DeadLetterReason / DeadLetterErrorDescription from a ``rejected`` outcome's error info."""
    info = getattr(condition, "info", None)
    if not isinstance(info, dict):
        return None, None
    reason, description = info.get("DeadLetterReason"), info.get("DeadLetterErrorDescription")
    return (None if reason is None else str(reason), None if description is None else str(description))
