"""httpx's transport interface over aiohttp's connection pool: httpx's API, aiohttp's cost per request.

    httpx.AsyncBaseTransport
     └── AiohttpTransport         one aiohttp ClientSession, opened in the event loop of the first request

httpx's own transport (httpcore) costs 12-16x the CPU of an aiohttp request and slows down as connections
grow. The maintained httpx-aiohttp package costs about what this one does, but it turns every aiohttp
connection error, a dropped connection included, into ``ConnectTimeout``, so a caller cannot tell a drop
from a timeout (bench/path.py measures all three side by side). This one hands aiohttp the URL httpx
already encoded, reuses its timeouts, hands over a body that arrived with the head as bytes (the connection
goes back to the pool at once), and maps aiohttp's errors to httpx's by what went wrong:

    aiohttp                                   httpx
    ConnectionTimeoutError (pool or connect)  ConnectTimeout
    ServerTimeoutError, other TimeoutError    ReadTimeout
    ClientConnectorError (DNS, refused, TLS)  ConnectError
    ServerDisconnectedError, ClientResponseError (not HTTP)  RemoteProtocolError
    ClientPayloadError (body cut short)       ReadError
    other ClientConnectionError               NetworkError
    other ClientError                         TransportError

What the session never does: follow a redirect (3xx is an answer), read proxies from the environment, keep
cookies, decompress, or add headers of its own (the request carries every header it sends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport"]

_TimeoutKey = tuple[float | None, float | None, float | None]


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends ``httpx.Request`` over one aiohttp pool. Create and use it in one event loop; ``aclose()`` it."""

    def __init__(self, *, max_connections: int = 512, keepalive_expiry: float = 60.0) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        # httpx's timeout extension -> aiohttp's ClientTimeout; a client uses a handful of distinct ones.
        self._timeouts: dict[_TimeoutKey, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or {}
        key = (given.get("pool"), given.get("connect"), given.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            pool, connect, read = key
            # aiohttp's `connect` covers waiting for a pooled connection and opening one; it has no
            # write timeout (a request without a body is one write into the socket buffer).
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        # A body given as bytes (the Batch client's: empty) is read without an await; a stream is awaited.
        given = request.stream
        body = b"".join(given) if isinstance(given, httpx.ByteStream) else await request.aread()
        encoding = request.headers.encoding  # httpx's: ascii, else utf-8, else latin-1
        try:
            response = await session.request(
                request.method,
                # httpx parsed, validated and percent-encoded the URL already: yarl takes it as it is.
                URL(str(request.url), encoded=True),
                headers=[
                    (name.decode(encoding), value.decode(encoding)) for name, value in request.headers.raw
                ],
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, request) from exc
        stream: httpx.AsyncByteStream
        if response.content.is_eof() and response.content.exception() is None:
            # The whole body came with the head (an empty 202, a short error): hand it over as bytes and
            # give the connection back now, instead of streaming it chunk by chunk.
            stream = httpx.ByteStream(response.content.read_nowait())
            response.release()
        else:
            stream = _ResponseStream(response, request)
        return httpx.Response(response.status, headers=response.raw_headers, stream=stream, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _ResponseStream(httpx.AsyncByteStream):
    """The body as aiohttp receives it; closing it returns the connection to the pool, or drops it when
    the body was not read to its end."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()
        await self._response.wait_for_close()


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """httpx's exception for what went wrong in aiohttp. The message is aiohttp's (host and failure,
    never a header)."""
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientPayloadError):
        kind = httpx.ReadError
    elif isinstance(exc, aiohttp.ClientConnectionError):
        kind = httpx.NetworkError
    else:
        kind = httpx.TransportError
    text = str(exc)
    return kind(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, request=request)
