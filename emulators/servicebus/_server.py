"""The process: a listening socket, proton's AMQP engine per connection, one ``selectors`` loop.

proton's Python reactor (``Container``) costs about 0.4 ms of CPU per message here: every frame goes
through ten or so Python-dispatched events (selectables, quiesce, transport), and each answer waits one
more ``select`` to be written. This loop drives the same engine objects (``Connection``, ``Transport``
with SASL ANONYMOUS, one ``Collector``) and dispatches the engine's events to the bare ``Handler`` in
``_broker``; it writes each connection's output as soon as the events are handled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType

import cproton  # type: ignore[import-untyped] # proton's cffi binding; it ships no type information
from proton import Collector, Connection, Event, Transport

from emulators import canary
from emulators.servicebus._auth import Keys
from emulators.servicebus._broker import Broker
from emulators.servicebus._config import QueueSettings
from emulators.servicebus._entity import Namespace

__all__ = ["scan", "serve"]

log = logging.getLogger("emulators.servicebus")
_READ_SIZE = 256 * 1024
# The engine events the broker handles; the rest (transport output, local state changes, finals) are
# popped without building their Python wrappers, which is most of proton's per-event cost.
_HANDLED = frozenset(
    event.number
    for event in (
        Event.CONNECTION_REMOTE_OPEN,
        Event.CONNECTION_REMOTE_CLOSE,
        Event.SESSION_REMOTE_OPEN,
        Event.SESSION_REMOTE_CLOSE,
        Event.LINK_REMOTE_OPEN,
        Event.LINK_REMOTE_CLOSE,
        Event.LINK_REMOTE_DETACH,
        Event.LINK_FLOW,
        Event.DELIVERY,
        Event.TRANSPORT_CLOSED,
    )
)


def scan(needle: bytes, tail: bytes, data: bytes) -> tuple[bool, bytes]:
    """Whether ``needle`` occurs in a stream whose last bytes so far are ``tail`` and that goes on with
    ``data``; and the tail to keep (the last ``len(needle) - 1`` bytes, enough for a split needle)."""
    keep = len(needle) - 1
    if needle in data or (tail and needle in tail + data[:keep]):
        return True, b""
    if not keep:
        return False, b""
    return False, data[-keep:] if len(data) >= keep else (tail + data)[-keep:]


class _Canary:
    """The string to watch every connection's bytes for (``emulators.canary``)."""

    def __init__(self, text: str) -> None:
        self.needle = text.encode("utf-8")

    @staticmethod
    def seen(peer: str) -> None:
        line = f"servicebus: canary seen on a connection from {peer}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        if os.environ.get(canary.REPORT_ENV):
            canary.report(line)


class _Client:
    """One accepted socket and the proton transport bound to its connection."""

    def __init__(self, sock: socket.socket, collector: Collector, peer: str, watch: _Canary | None) -> None:
        self.sock = sock
        self.peer = peer
        self._canary = watch
        self._tail = b""  # the end of the stream so far, when watching for the canary
        self.connection = Connection()
        self.connection.collect(collector)
        self.transport = Transport(Transport.SERVER)
        self.transport.sasl().allowed_mechs("ANONYMOUS")
        self.transport.bind(self.connection)
        self.key = cproton.addressof(self.transport._impl)
        self.deadline = 0.0  # next transport.tick(), 0 = none
        self.writing = False

    def read(self) -> None:
        capacity = self.transport.capacity()
        if capacity <= 0:
            return
        try:
            data = self.sock.recv(min(capacity, _READ_SIZE))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if self._canary is not None:
                self._watch(self._canary, data)
            self.transport.push(data)
        else:
            self.transport.close_tail()

    def _watch(self, watch: _Canary, data: bytes) -> None:
        found, self._tail = scan(watch.needle, self._tail, data)
        if found:
            watch.seen(self.peer)
            self._canary = None  # once per connection

    def abort(self) -> None:
        """End the connection as a network failure would: a reset, no AMQP close; the engine sees
        its transport closed."""
        with contextlib.suppress(OSError):  # a socket already in error closes as it can
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.close_tail()
        self.transport.close_head()

    def write(self) -> bool:
        """Send what the engine has; True while output remains (wait for the socket to drain)."""
        pending = self.transport.pending()
        while pending > 0:
            try:
                sent = self.sock.send(self.transport.peek(pending) or b"")
            except BlockingIOError:
                return True
            except OSError:
                self.transport.close_head()
                return False
            self.transport.pop(sent)
            pending = self.transport.pending()
        return False

    @property
    def closed(self) -> bool:
        return self.transport.closed


class _Loop:
    """select -> feed transports -> dispatch engine events to the broker -> write what they produced."""

    def __init__(
        self, listener: socket.socket, broker: Broker, collector: Collector, watch: _Canary | None = None
    ) -> None:
        self._listener = listener
        self._canary = watch
        self._broker = broker
        self._collector = collector
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        # SIGTERM/SIGINT set `stopping`; the byte Python writes to the wakeup socket ends the select.
        self._wakeup, wakeup_writer = socket.socketpair()
        for end in (self._wakeup, wakeup_writer):
            end.setblocking(False)
        self._wakeup_writer = wakeup_writer
        self._selector.register(self._wakeup, selectors.EVENT_READ, self._wakeup)
        self.stopping = False
        self._drop_requested = False
        self._clients: dict[int, _Client] = {}  # by the address of their proton transport
        self._next_tick = 0.0
        self._earliest_deadline = 0.0

    def run(self, ready: Callable[[], None]) -> None:
        """Serve until SIGTERM or SIGINT; ``ready`` runs once the signals are handled."""
        previous_fd = signal.set_wakeup_fd(self._wakeup_writer.fileno())
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGUSR1, self._request_drop)
        ready()
        try:
            while not self.stopping:
                self._iterate()
        finally:
            signal.set_wakeup_fd(previous_fd)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _request_drop(self, signum: int, frame: FrameType | None) -> None:
        self._drop_requested = True  # done by the loop, between two rounds of events

    def _drop_all(self) -> None:
        """SIGUSR1: reset every client connection; the broker forgets their links, locks stay."""
        self._drop_requested = False
        clients = list(self._clients.values())
        for client in clients:
            client.abort()
        self._dispatch(set())  # the closed transports' events: the broker forgets their links
        for client in clients:
            self._drop(client)
        sys.stderr.write(f"servicebus: SIGUSR1: dropped {len(clients)} connection(s)\n")
        sys.stderr.flush()

    def _iterate(self) -> None:
        if self._drop_requested:
            self._drop_all()
        touched: set[_Client] = set()
        for key, mask in self._selector.select(self._timeout()):
            client = key.data
            if client is None:
                self._accept()
                continue
            if client is self._wakeup:
                self._wakeup.recv(64)
                continue
            touched.add(client)
            if mask & selectors.EVENT_READ:
                client.read()
            if mask & selectors.EVENT_WRITE:
                client.writing = False
        now = time.time()
        self._broker.on_time(now)
        self._dispatch(touched)
        self._tick(now, touched)
        self._flush(touched)

    def _timeout(self) -> float | None:
        deadlines = [due for due in (self._earliest_deadline, self._broker.next_due()) if due]
        return max(min(deadlines) - time.time(), 0.0) if deadlines else None

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            log.info("connection from %s:%s", *peer[:2])
            client = _Client(sock, self._collector, f"{peer[0]}:{peer[1]}", self._canary)
            self._clients[client.key] = client
            self._selector.register(sock, selectors.EVENT_READ, client)

    def _dispatch(self, touched: set[_Client]) -> None:
        """Hand the engine's events to the broker; note which connections they concern."""
        collector = self._collector
        raw = collector._impl
        while not cproton.isnull(impl := cproton.pn_collector_peek(raw)):
            client = self._clients.get(cproton.addressof(cproton.pn_event_transport(impl)))
            if client is not None:
                touched.add(client)
            if cproton.pn_event_type(impl) in _HANDLED and (event := collector.peek()) is not None:
                event.dispatch(self._broker)
            collector.pop()

    def _tick(self, now: float, touched: set[_Client]) -> None:
        """Let proton keep idle timeouts (heartbeats): connections with activity, and all every second."""
        everyone = now >= self._next_tick
        for client in self._clients.values() if everyone else touched:
            client.deadline = client.transport.tick(now)
            if client.deadline and (not self._earliest_deadline or client.deadline < self._earliest_deadline):
                self._earliest_deadline = client.deadline
        if everyone:
            self._next_tick = now + 1.0
            self._earliest_deadline = min(
                (c.deadline for c in self._clients.values() if c.deadline), default=0
            )

    def _flush(self, touched: set[_Client]) -> None:
        """Write the output of every connection that had activity; forget those that have closed."""
        while touched:
            for client in touched:
                was_writing = client.writing
                client.writing = client.write()
                if client.closed:
                    self._drop(client)
                elif client.writing != was_writing:
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.writing else 0)
                    self._selector.modify(client.sock, events, client)
            touched = set()
            self._dispatch(touched)  # closing transports emit events of their own

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.key, None) is None:
            return
        self._selector.unregister(client.sock)
        client.sock.close()
        client.transport.unbind()
        log.info("connection closed")

    def close(self) -> None:
        for client in self._clients.values():
            client.sock.close()
        self._selector.close()
        self._wakeup.close()
        self._wakeup_writer.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    listener.setblocking(False)
    return listener


def serve(
    queues: Iterable[QueueSettings], *, host: str, port: int, banner: str, keys: Keys | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; ``banner`` (with ``{url}``) is the one line written to stdout;
    ``keys``: the shared access keys tokens must be signed with (default: the well-known one)."""
    namespace = Namespace(queues)
    listener = _bind(host, port)
    url_host = f"[{host}]" if ":" in host else host
    url = f"sb://{url_host}:{listener.getsockname()[1]}"
    watched = canary.current()
    loop = _Loop(listener, Broker(namespace, keys), Collector(), _Canary(watched) if watched else None)
    log.info("serving %d queue(s) on %s", len(namespace.queues), url)
    try:
        loop.run(ready=lambda: _announce(banner.format(url=url)))
    finally:
        loop.close()
        listener.close()


def _announce(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
