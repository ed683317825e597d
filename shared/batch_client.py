"""Batch's Delete Job operation, sent exactly as documented and answered exactly as Batch answered.

`BatchClient.delete_job()` makes one request (no retries: the caller decides) and returns a
`BatchResponse` for any HTTP status. It refuses to build a request for an invalid job ID or header
value, never follows a redirect, and sends the token only to the endpoint it was given (which comes
from settings, never from a message).

httpx is the API; under it sits aiohttp's connection pool (httpx-aiohttp), chosen by measurement:
see bench/transport.py and the README.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Literal

import aiohttp
import httpx

from shared.batch_errors import (
    MAX_RAW_ERROR_CHARS,
    BatchError,
    BatchTransportError,
    InvalidRequestError,
    parse_batch_error,
)
from shared.settings import DEFAULT_API_VERSION, validate_endpoint

__all__ = [
    "BatchClient",
    "BatchResponse",
    "DeleteJobOptions",
    "format_http_date",
    "parse_retry_after",
]

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Header values: printable ASCII only, so CR/LF can never split a header (RFC 9110 field-vchar).
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_SERVICE_DEFAULT_TIMEOUT = 30  # seconds; Batch uses it for absent or larger timeOut values
_MAX_BODY = 64 * 1024
_USER_AGENT = "batch-job-deleter/0.1 (+azure-functions; python)"

TokenGetter = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class DeleteJobOptions:
    """What a Delete Job request carries besides the job ID; None = not sent."""

    force: bool | None = None
    time_out: int | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None
    client_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResponse:
    """Batch's answer to one request."""

    status: int
    request_id: str | None
    client_request_id: str  # the one we sent
    echoed_client_request_id: str | None
    error: BatchError | None
    # The body's text, cut to 4 KiB, when it was not Batch's error JSON (and not empty).
    raw_body: str | None
    # Retry-After in seconds (from seconds or an HTTP-date), when the answer carried one.
    retry_after: float | None
    location: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        return self.error.code if self.error else None


def format_http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. `Sat, 28 Nov 2026 10:00:00 GMT`."""
    if moment.tzinfo is None:
        raise InvalidRequestError("date", "must carry a time zone offset")
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _header_value(name: str, value: str) -> str:
    if not _HEADER_VALUE.fullmatch(value):
        raise InvalidRequestError(name, "must be printable ASCII (no control characters)")
    return value


def build_request_parts(
    job_id: str, options: DeleteJobOptions, *, api_version: str
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Validate and return (path, query, headers) without the token. Raises InvalidRequestError."""
    if not JOB_ID.fullmatch(job_id):
        raise InvalidRequestError("jobId", "must be 1-64 ASCII letters, digits, hyphens or underscores")
    query = {"api-version": api_version}
    if options.time_out is not None:
        if isinstance(options.time_out, bool) or options.time_out < 1:
            raise InvalidRequestError("timeOut", "must be a whole number of seconds >= 1")
        query["timeOut"] = str(options.time_out)
    if options.force is not None:
        query["force"] = "true" if options.force else "false"
    client_request_id = options.client_request_id or str(uuid.uuid4())
    if not _GUID.fullmatch(client_request_id):
        raise InvalidRequestError("clientRequestId", "must be a GUID without braces")
    headers = {
        "client-request-id": client_request_id,
        "return-client-request-id": "true",
        "ocp-date": format_http_date(datetime.now(UTC)),
        "content-length": "0",
    }
    if options.if_match is not None:
        headers["if-match"] = _header_value("ifMatch", options.if_match)
    if options.if_none_match is not None:
        headers["if-none-match"] = _header_value("ifNoneMatch", options.if_none_match)
    if options.if_modified_since is not None:
        headers["if-modified-since"] = format_http_date(options.if_modified_since)
    if options.if_unmodified_since is not None:
        headers["if-unmodified-since"] = format_http_date(options.if_unmodified_since)
    return f"/jobs/{job_id}", query, headers


def default_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """aiohttp's pool under httpx (see bench/transport.py for why)."""
    from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - import cost paid on first use

    return AiohttpTransport(limits=httpx.Limits(max_connections=max_connections, keepalive_expiry=60.0))


class BatchClient:
    """Deletes Batch jobs on one endpoint. Create it inside the event loop that uses it; reuse it."""

    def __init__(
        self,
        endpoint: str,
        token: TokenGetter,
        *,
        api_version: str = DEFAULT_API_VERSION,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 512,
        connect_timeout: float = 10.0,
        read_timeout_margin: float = 10.0,
    ) -> None:
        # Settings validated it already; checking again keeps the token off unsafe hosts for any caller.
        self._endpoint = validate_endpoint(endpoint, "endpoint")
        self._token = token
        self._api_version = api_version
        self._connect_timeout = connect_timeout
        self._margin = read_timeout_margin
        # httpx's Request/Response over the transport, without AsyncClient: it would add cookies,
        # auth flows, redirect handling and environment proxies we never want, and it doubles the
        # per-request CPU (bench/transport.py). The transport never follows redirects either.
        self._transport = transport or default_transport(max_connections)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def read_timeout(self, time_out: int | None) -> float:
        """The service spends at most min(timeOut, 30) s; we wait that plus a margin."""
        service = min(time_out or _SERVICE_DEFAULT_TIMEOUT, _SERVICE_DEFAULT_TIMEOUT)
        return service + self._margin

    async def delete_job(self, job_id: str, options: DeleteJobOptions | None = None) -> BatchResponse:
        """Send one Delete Job request and return Batch's answer, whatever its status.

        Raises InvalidRequestError (nothing sent) or BatchTransportError (no answer).
        """
        options = options or DeleteJobOptions()
        path, query, headers = build_request_parts(job_id, options, api_version=self._api_version)
        headers["authorization"] = "Bearer " + await self._token()
        headers["user-agent"] = _USER_AGENT
        timeout = {
            "connect": self._connect_timeout,
            "read": self.read_timeout(options.time_out),
            "write": self._connect_timeout,
            "pool": self._connect_timeout,
        }
        request = httpx.Request(
            "DELETE",
            self._endpoint + path,
            params=query,
            headers=headers,
            extensions={"timeout": timeout},
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                body = await _read_limited(response, _MAX_BODY)
            finally:
                await response.aclose()
        except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc) from None
        return _to_response(response, body, headers["client-request-id"])

    async def aclose(self) -> None:
        await self._transport.aclose()


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _to_response(response: httpx.Response, body: bytes, client_request_id: str) -> BatchResponse:
    error = None if 200 <= response.status_code < 300 else parse_batch_error(body)
    raw_body = None
    if error is None and body and not 200 <= response.status_code < 300:
        raw_body = body.decode("utf-8", errors="replace")[:MAX_RAW_ERROR_CHARS]
    h = response.headers
    return BatchResponse(
        status=response.status_code,
        request_id=h.get("request-id"),
        client_request_id=client_request_id,
        echoed_client_request_id=h.get("client-request-id"),
        error=error,
        raw_body=raw_body,
        retry_after=parse_retry_after(h.get("retry-after")),
        location=h.get("location"),
    )


def _transport_error(exc: BaseException) -> BatchTransportError:
    # httpx-aiohttp maps a dropped connection to ConnectTimeout; look at the aiohttp cause instead.
    cause = exc.__cause__ or exc
    timed_out = isinstance(cause, TimeoutError | aiohttp.ServerTimeoutError) or (
        isinstance(exc, httpx.TimeoutException) and not isinstance(cause, aiohttp.ClientError)
    )
    kind: Literal["timeout", "connection"] = "timeout" if timed_out else "connection"
    detail = type(cause).__name__
    text = str(cause)
    # aiohttp's messages name the host and the failure, never headers; keep them short anyway.
    return BatchTransportError(kind, f"{detail}: {text[:200]}" if text else detail)
