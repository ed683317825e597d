"""A tiny HTTP/1.1 server core shared by the emulators.

Why not a framework: the emulators must never be the bottleneck of a client benchmark (an asyncio
Protocol fed by httptools' C parser answers tens of thousands of keep-alive requests a second on one
core), and they must misbehave on demand in ways frameworks hide: close a socket without answering,
answer late, answer with any status, headers and body.

The interface is one coroutine, ``async def handle(request: Request) -> Response``. Requests on one
connection (pipelined or sequential) are answered strictly in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import sys
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

import httptools

__all__ = ["Handler", "Listener", "Request", "Response", "listen", "reason_phrase", "run"]

log = logging.getLogger("emulators.http")

_MAX_PENDING = 64  # pipelined requests buffered per connection before reading pauses
# Header names (and methods) repeat: one shared str each saves a decode per header and, in a
# request log of 200,000 entries, hundreds of megabytes.
_NAMES: dict[bytes, str] = {}
_NAMES_LIMIT = 1024
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")}


class Request:
    """One parsed request. ``path`` stays percent-encoded; ``segments`` are its decoded parts."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "segments", "target")

    def __init__(
        self,
        method: str,
        target: str,
        *,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool = True,
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        # Split before decoding so that an encoded "/" (%2F) stays inside its segment.
        self.segments = tuple(unquote(s) if "%" in s else s for s in path.split("/")[1:])
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Response:
    """What to answer; ``drop`` closes the connection instead (after writing ``raw``, if given: bytes
    that need not be HTTP at all), ``delay`` (seconds) waits first."""

    __slots__ = ("body", "delay", "drop", "headers", "raw", "status")

    def __init__(
        self,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        drop: bool = False,
        delay: float = 0.0,
        raw: bytes = b"",
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.drop = drop
        self.delay = delay
        self.raw = raw

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        """A JSON response (``application/json; charset=utf-8``)."""
        body = json.dumps(obj, separators=(",", ":")).encode()
        all_headers = [("Content-Type", "application/json; charset=utf-8")]
        if headers:
            all_headers.extend(headers)
        return cls(status, all_headers, body)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` ("Unknown" for non-standard codes)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_STATUS_LINES: dict[int, bytes] = {}
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache  # noqa: PLW0603 - one formatted Date per second, not per request
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def encode_response(response: Response, close: bool) -> bytes:
    """Serialise a response; adds ``Content-Length``, ``Date`` and ``Connection: close`` as needed."""
    line = _STATUS_LINES.get(response.status)
    if line is None:
        line = f"HTTP/1.1 {response.status} {reason_phrase(response.status)}\r\n".encode()
        _STATUS_LINES[response.status] = line
    head = "".join([f"{name}: {value}\r\n" for name, value in response.headers])
    given = f"\n{head.lower()}"  # to find headers the handler set itself (a fault may)
    if "\ncontent-length:" not in given:
        head += f"Content-Length: {len(response.body)}\r\n"
    if "\ndate:" not in given:
        head += f"Date: {_http_date()}\r\n"
    if close:
        head += "Connection: close\r\n"
    return line + f"{head}\r\n".encode("latin-1") + response.body


def _parse_query(query: str) -> dict[str, str]:
    """Like ``dict(parse_qsl(query, keep_blank_values=True))``, with a fast path for plain text."""
    if "%" in query or "+" in query:
        return dict(parse_qsl(query, keep_blank_values=True))
    result = {}
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            result[name] = value
    return result


def _handler_failed(request: Request) -> Response:
    log.exception("handler failed for %s %s", request.method, request.path)
    return Response(500, [("Content-Type", "text/plain")], b"emulator error")


async def _ready(response: Response) -> Response:
    return response


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Response], suspended_on: Any) -> Generator[Any, Any, Response]:
    """Continue, inside a Task, a coroutine already run up to its first suspension: pass what it
    waits on up to the Task and the Task's results (or exceptions) back down."""
    while True:
        try:
            try:
                result = yield suspended_on
            except BaseException as error:
                suspended_on = coroutine.throw(error)
            else:
                suspended_on = coroutine.send(result)
        except StopIteration as done:
            response: Response = done.value
            return response


class _Connection(asyncio.Protocol):
    """One client connection: parses requests and answers them in order."""

    def __init__(self, handler: Handler, connections: set[_Connection]) -> None:
        self._handler = handler
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._closed = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._pending.clear()
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"upgrades are not supported")
        except (httptools.HttpParserError, ValueError, UnicodeDecodeError):
            self._fail(400, b"malformed request")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < _NAMES_LIMIT:
                _NAMES[name] = key
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        if self._headers.get("expect", "").lower() == "100-continue" and self._transport:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closed:
            return
        url = httptools.parse_url(self._url)
        method = self._parser.get_method()
        request = Request(
            _METHODS.get(method) or method.decode("latin-1"),
            self._url.decode("latin-1"),
            path=url.path.decode("latin-1") if url.path else "/",
            query=_parse_query(url.query.decode("latin-1")) if url.query else {},
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self._parser.should_keep_alive(),
        )
        if self._task is None and not self._pending:
            self._start(request)
            return
        self._pending.append(request)  # answered in order, after the one in progress
        if len(self._pending) >= _MAX_PENDING and self._transport and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    # answering
    def _start(self, request: Request) -> None:
        """Answer at once when the handler completes without suspending (the common case: no
        Task, no extra loop iteration); otherwise a Task finishes it and the queue behind it."""
        coroutine = self._handler(request)
        try:
            suspended_on = coroutine.send(None)
        except StopIteration as done:
            response: Response = done.value
        except Exception:
            response = _handler_failed(request)
        else:
            self._task = asyncio.get_running_loop().create_task(
                self._finish(request, _resume(coroutine, suspended_on))
            )
            return
        if response.delay > 0:
            self._task = asyncio.get_running_loop().create_task(self._finish(request, _ready(response)))
            return
        self._send(request, response)

    async def _finish(self, request: Request, answer: Awaitable[Response]) -> None:
        try:
            try:
                response = await answer
            except Exception:
                response = _handler_failed(request)
            if response.delay > 0:
                await asyncio.sleep(response.delay)
            self._send(request, response)
        finally:
            self._task = None
        while self._pending and self._task is None and not self._closed:
            if self._paused and len(self._pending) < _MAX_PENDING // 4 and self._transport:
                self._paused = False
                self._transport.resume_reading()
            self._start(self._pending.popleft())

    def _send(self, request: Request, response: Response) -> None:
        if self._closed or self._transport is None:
            return
        if response.drop:
            if response.raw:
                self._transport.write(response.raw)
            self._close()
            return
        close = not request.keep_alive
        self._transport.write(encode_response(response, close))
        if close:
            self._close()

    def _fail(self, status: int, text: bytes) -> None:
        if self._transport and not self._closed:
            response = Response(status, [("Content-Type", "text/plain")], text)
            self._transport.write(encode_response(response, close=True))
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._pending.clear()
        if self._transport is not None:
            self._transport.close()

    def shutdown(self) -> asyncio.Task[None] | None:
        """Close the connection; returns the cancelled in-flight task, if any, to await."""
        task = self._task
        if task is not None:
            task.cancel()
        self._close()
        return task


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Listener:
    """A bound server: ``url`` is its base URL; ``close()`` stops it and lets in-flight answers end."""

    def __init__(self, server: asyncio.Server, url: str, connections: set[_Connection]) -> None:
        self.server = server
        self.url = url
        self._connections = connections

    async def close(self) -> None:
        self.server.close()
        in_flight = [task for connection in list(self._connections) if (task := connection.shutdown())]
        await asyncio.gather(*in_flight, return_exceptions=True)
        await self.server.wait_closed()


async def listen(
    make_handler: Callable[[str], Handler], host: str, port: int, *, tls: ssl.SSLContext | None = None
) -> Listener:
    """Bind ``host:port`` (0 = a free port) in the running loop; ``make_handler`` gets the base URL
    (``https://`` when ``tls`` is given: the connections are then TLS, with that server context)."""
    loop = asyncio.get_running_loop()
    connections: set[_Connection] = set()
    handlers: list[Handler] = []  # filled once the port, hence the base URL, is known

    def protocol() -> _Connection:
        return _Connection(handlers[0], connections)

    server = await loop.create_server(protocol, host, port, reuse_address=True, backlog=1024, ssl=tls)
    bound_port = server.sockets[0].getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    base_url = f"{'https' if tls else 'http'}://{url_host}:{bound_port}"
    handlers.append(make_handler(base_url))
    return Listener(server, base_url, connections)


async def _serve(
    make_handler: Callable[[str], Handler], host: str, port: int, banner: str, tls: ssl.SSLContext | None
) -> None:
    loop = asyncio.get_running_loop()
    listener = await listen(make_handler, host, port, tls=tls)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(banner.format(url=listener.url) + "\n")
    sys.stdout.flush()
    await stop.wait()
    await listener.close()


def run(
    make_handler: Callable[[str], Handler],
    *,
    host: str,
    port: int,
    banner: str,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``make_handler`` gets the base URL once the port is bound;
    ``banner`` (with ``{url}``) is then printed to stdout as the single "ready" line. With ``tls``,
    HTTPS."""
    loop = _new_event_loop()
    try:
        loop.run_until_complete(_serve(make_handler, host, port, banner, tls))
    finally:
        loop.close()
