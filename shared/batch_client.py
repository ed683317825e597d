"""Batch's Delete Job operation, sent exactly as documented and answered exactly as Batch answered.

`BatchClient.delete_job()` makes one request (no retries: the caller decides) and returns a
`BatchResponse` for any HTTP status. It refuses to build a request for an invalid job ID or header
value, never follows a redirect, and sends the token only to the endpoint it was given (which comes
from settings, never from a message).

It speaks httpx: each request is an `httpx.Request` handed straight to an `httpx.AsyncBaseTransport`,
and each answer an `httpx.Response`. No `httpx.AsyncClient` in between: its cookies, auth flow, redirect
logic and environment proxies are all things this client must not do, and it more than doubles the CPU
per request. The transport is aiohttp's connection pool (`shared.aiohttp_transport`), chosen by
measurement: httpx's default transport costs 12-16x the CPU of an aiohttp request (bench/, docs/benchmarks.md,
section 1). Every operation goes through `_send`: the token only ever travels to this client's endpoint.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Literal
from urllib.parse import urlencode

import httpx

from shared.aiohttp_transport import AiohttpTransport
from shared.batch_errors import (
    MAX_RAW_ERROR_CHARS,
    BatchError,
    BatchTransportError,
    InvalidRequestError,
    parse_batch_error,
)
from shared.settings import DEFAULT_API_VERSION, validate_endpoint
from shared.telemetry import OFF, AnyTelemetry

__all__ = [
    "JOB_SELECT",
    "BatchClient",
    "BatchJob",
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
_USER_AGENT = b"batch-job-deleter/0.1 (+azure-functions; python)"

_NO_BODY = httpx.ByteStream(b"")
_ANSWER_HEADERS = (
    b"request-id",
    b"client-request-id",
    b"retry-after",
    b"location",
)  # in BatchResponse's order

TokenGetter = Callable[[], Awaitable[str]]

# What verification reads of a job (contract section 6): Batch's Get Job answers only these with $select
# (learn.microsoft.com/rest/api/batchservice/job/get: "$select: An OData $select clause").
JOB_SELECT = "id,state,creationTime,stateTransitionTime"


@dataclass(frozen=True, slots=True)
class BatchJob:
    """The fields of a Get Job answer that verification reads; None = absent or unreadable."""

    id: str | None
    state: str | None
    creation_time: datetime | None
    state_transition_time: datetime | None


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
    # Get Job only: the job Batch described in a 2xx answer (None when the body was not a job).
    job: BatchJob | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str | None:
        return self.error.code if self.error else None


class _HttpDateClock:
    """Now as an RFC 7231 date, for `ocp-date`. It changes once a second, so it is formatted once a
    second instead of per request (a cost per message the profile showed)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = format_datetime(datetime.fromtimestamp(second, UTC), usegmt=True)
            self._second = second
        return self._text


_now_http_date = _HttpDateClock()


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


def _with_target(endpoint: httpx.URL, path: str, query: str) -> httpx.URL:
    """``endpoint`` (no trailing slash) with ``path`` appended and ``query``: validated ASCII that needs no
    more percent-encoding.

    httpx parses and validates every URL it is given as text, character by character: the largest single
    cost per request in the profile (15-30 µs, more than the rest of httpx's request and response together;
    bench/, docs/benchmarks.md). The endpoint was parsed once; this copies httpx's record of it with the
    new path and query. It is httpx's private record (requirements.in holds httpx to 0.28.x):
    tests/shared/test_batch_client.py pins that the result equals httpx's own parse of the same text.
    """
    url = httpx.URL(endpoint)
    base = endpoint._uri_reference
    url._uri_reference = base._replace(path=base.path + path, query=query)
    return url


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
        "ocp-date": _now_http_date(),
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


class BatchClient:
    """Deletes Batch jobs on one endpoint. Create it inside the event loop that uses it; reuse it."""

    def __init__(
        self,
        endpoint: str,
        token: TokenGetter,
        *,
        api_version: str = DEFAULT_API_VERSION,
        max_connections: int = 512,
        connect_timeout: float = 10.0,
        read_timeout_margin: float = 10.0,
        telemetry: AnyTelemetry = OFF,
    ) -> None:
        # Settings validated it already; checking again keeps the token off unsafe hosts for any caller.
        self._endpoint = validate_endpoint(endpoint, "endpoint")
        self._url = httpx.URL(self._endpoint)
        scheme = self._url.scheme
        self._server = (scheme, self._url.host, self._url.port or (443 if scheme == "https" else 80))
        self._host = self._url.netloc
        self._token = token
        self._api_version = api_version
        self._connect_timeout = connect_timeout
        self._margin = read_timeout_margin
        self._telemetry = telemetry
        self._transport: httpx.AsyncBaseTransport = AiohttpTransport(max_connections=max_connections)
        # httpx's timeout extension, by read timeout: at most 30 distinct ones.
        self._timeouts: dict[float, dict[str, float]] = {}

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
        response, body = await self._send("DELETE", path, query, headers, options.time_out)
        return _to_response(response, body, headers["client-request-id"])

    async def get_job(
        self, job_id: str, *, select: str = JOB_SELECT, client_request_id: str | None = None
    ) -> BatchResponse:
        """Send one Get Job request (`GET /jobs/{jobId}?$select=...`) and return Batch's answer, the job's
        fields in `job` when it is a 2xx. The same headers as a delete, without preconditions.

        Raises InvalidRequestError (nothing sent) or BatchTransportError (no answer).
        """
        options = DeleteJobOptions(client_request_id=client_request_id)
        path, query, headers = build_request_parts(job_id, options, api_version=self._api_version)
        query["$select"] = select
        del headers["content-length"]  # a GET has no body
        response, body = await self._send("GET", path, query, headers, None)
        answer = _to_response(response, body, headers["client-request-id"])
        if answer.ok:
            answer = replace(answer, job=parse_job(body))
        return answer

    async def _send(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], time_out: int | None
    ) -> tuple[httpx.Response, bytes]:
        """One request to this client's endpoint (and only there) with the bearer token: Batch's answer
        and up to 64 KiB of its body. ``path``, ``query`` and ``headers`` are validated already.

        Raises BatchTransportError when there is no answer (no status line).
        """
        token = await self._token()
        # Every header as bytes, Host and Content-Length included, and the (empty) body as a stream: httpx
        # then neither normalises the header names and values again nor re-derives Host and the body's
        # headers, costs per request the profile showed. Every value is validated printable ASCII.
        raw_headers = [(name.encode(), value.encode()) for name, value in headers.items()]
        raw_headers += [
            (b"host", self._host),
            (b"user-agent", _USER_AGENT),
            (b"authorization", b"Bearer " + token.encode("ascii")),
        ]
        request = httpx.Request(
            method,
            _with_target(self._url, path, urlencode(query)),
            headers=raw_headers,
            stream=_NO_BODY,
            extensions={"timeout": self._timeout(time_out)},
        )
        # The dependency span (None when telemetry is off): method, URL and request ids, never a header.
        dependency = self._telemetry.dependency(
            method, request.url, self._server, headers.get("client-request-id")
        )
        status: int | None = None
        error: str | None = "cancelled"
        try:
            try:
                response = await self._transport.handle_async_request(request)
            except httpx.TransportError as exc:
                failure = _transport_error(exc)
                error = failure.kind
                raise failure from None
            status, error = response.status_code, None
            try:
                body = await _read_limited(response, _MAX_BODY)
            finally:
                await response.aclose()
        finally:
            if dependency is not None:
                dependency.end(status, response.headers.get("request-id") if status else None, error)
        return response, body

    def _timeout(self, time_out: int | None) -> dict[str, float]:
        read = self.read_timeout(time_out)
        timeout = self._timeouts.get(read)
        if timeout is None:
            connect = self._connect_timeout
            timeout = self._timeouts[read] = {
                "connect": connect,
                "read": read,
                "write": connect,
                "pool": connect,
            }
        return timeout

    async def aclose(self) -> None:
        await self._transport.aclose()


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body. If the connection fails inside the body, what did arrive: the
    status line already is Batch's answer (a 202 means the deletion was accepted; a 400 will not change
    on a retry), so it is not turned into "no answer"."""
    # The transport's stream itself: Response.aiter_raw() adds bookkeeping (a context manager, a chunker,
    # a byte count) that cost more per message than reading an empty 202 does.
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("an async transport gives an async stream")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except httpx.TransportError:
        pass
    return b"".join(chunks)[:limit]


def _to_response(response: httpx.Response, body: bytes, client_request_id: str) -> BatchResponse:
    status = response.status_code
    error = None if 200 <= status < 300 else parse_batch_error(body)
    raw_body = None
    if error is None and body and not 200 <= status < 300:
        raw_body = body.decode("utf-8", errors="replace")[:MAX_RAW_ERROR_CHARS]
    # One pass over the raw headers, decoding only the four read (a repeated header: its first value);
    # httpx's Headers.get() scans and decodes every header for each name, a cost the profile showed.
    wanted: dict[bytes, str | None] = dict.fromkeys(_ANSWER_HEADERS)
    encoding = response.headers.encoding  # as httpx decodes them: ascii, else utf-8, else latin-1
    for name, value in response.headers.raw:
        key = name.lower()
        if key in wanted and wanted[key] is None:
            wanted[key] = value.decode(encoding)
    request_id, echoed, retry_after, location = wanted.values()
    return BatchResponse(
        status=status,
        request_id=request_id,
        client_request_id=client_request_id,
        echoed_client_request_id=echoed,
        error=error,
        raw_body=raw_body,
        retry_after=parse_retry_after(retry_after),
        location=location,
    )


def _timestamp(value: object) -> datetime | None:
    """An RFC 3339 date-time as Batch writes it (up to 7 fractional digits: Python keeps 6)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_job(body: bytes) -> BatchJob | None:
    """The job in a Get Job answer's body, or None when the body is not a JSON object."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    job_id, state = data.get("id"), data.get("state")
    return BatchJob(
        id=job_id if isinstance(job_id, str) else None,
        state=state if isinstance(state, str) else None,
        creation_time=_timestamp(data.get("creationTime")),
        state_transition_time=_timestamp(data.get("stateTransitionTime")),
    )


def _transport_error(exc: httpx.TransportError) -> BatchTransportError:
    kind: Literal["timeout", "connection"] = (
        "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    )
    # The transport's messages name the failure and the host, never headers; keep them short anyway.
    text = str(exc)
    return BatchTransportError(kind, text[:200] or type(exc).__name__)
