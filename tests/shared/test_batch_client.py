"""The Batch client against the Batch emulator and the identity endpoint, over real sockets.

The real azure-identity ManagedIdentityCredential fetches tokens from the identity endpoint; the real
httpx (over aiohttp) sends the requests; the emulator's request log shows what reached the wire.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import urlencode

import httpx
import pytest
from azure.identity.aio import ManagedIdentityCredential

from emulators import RunningProcess, start
from emulators.control import BatchEmulator
from shared.batch_client import BatchClient, DeleteJobOptions, _with_target
from shared.batch_errors import BatchTransportError, InvalidRequestError
from shared.identity import BatchToken
from shared.settings import SettingsError
from tests.conftest import BatchHandle, IdentityHandle

pytestmark = pytest.mark.usefixtures("identity_env")


@pytest.fixture
async def credential() -> AsyncIterator[ManagedIdentityCredential]:
    async with ManagedIdentityCredential() as cred:
        yield cred


@pytest.fixture
async def client(
    batch_emulator: BatchHandle, credential: ManagedIdentityCredential
) -> AsyncIterator[BatchClient]:
    batch = BatchClient(batch_emulator.url, BatchToken(credential), read_timeout_margin=0.5)
    yield batch
    await batch.aclose()


def control(handle: BatchHandle) -> BatchEmulator:
    return handle.control


@pytest.fixture(scope="module")
def second_process() -> Iterator[RunningProcess]:
    """Another host, to check that nothing the client sends ever reaches it."""
    with start("emulators.batch") as process:
        yield process


@pytest.fixture
def second_batch_emulator(second_process: RunningProcess) -> Iterator[BatchHandle]:
    with BatchEmulator(second_process.url) as ctl:
        ctl.reset()
        yield BatchHandle(second_process.url, ctl, second_process)


async def test_plain_delete_sends_exactly_the_documented_request(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """No options: api-version only in the query; the fixed headers; a bearer token; an empty body."""
    ctl = control(batch_emulator)
    ctl.add_job("nightly-42")
    response = await client.delete_job("nightly-42")

    assert response.status == 202
    assert response.ok
    assert response.error is None
    (logged,) = ctl.requests()
    assert logged["method"] == "DELETE"
    assert logged["path"] == "/jobs/nightly-42"
    assert logged["query"] == {"api-version": "2025-06-01"}
    headers = logged["headers"]
    assert uuid.UUID(headers["client-request-id"])
    assert headers["return-client-request-id"] == "true"
    ocp_date = datetime.strptime(headers["ocp-date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert abs(ocp_date.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert headers["authorization"].startswith("Bearer ")  # the log redacts the token itself
    assert headers["content-length"] == "0"
    for absent in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since"):
        assert absent not in headers
    # What Batch answered, as data
    assert response.request_id is not None
    assert uuid.UUID(response.request_id)
    assert response.echoed_client_request_id == headers["client-request-id"]
    assert response.client_request_id == headers["client-request-id"]
    assert ctl.get_job("nightly-42") is None or ctl.get_job("nightly-42")["state"] == "deleting"  # type: ignore[index]


async def test_every_option_reaches_the_wire(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """force, timeOut, the four preconditions (dates as RFC 7231 GMT) and the caller's request id."""
    ctl = control(batch_emulator)
    job = ctl.add_job("opt-job")
    etag = job["eTag"]
    since = datetime(2026, 11, 28, 11, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    request_id = "9C4D50EE-2D56-4CD3-8152-34347DC9F2B0"
    options = DeleteJobOptions(
        force=True,
        time_out=12,
        if_match=etag,
        if_none_match='"other"',
        if_unmodified_since=datetime.now(UTC) + timedelta(days=1),
        if_modified_since=since,
        client_request_id=request_id,
    )
    response = await client.delete_job("opt-job", options)

    (logged,) = ctl.requests()
    assert logged["query"] == {"api-version": "2025-06-01", "timeOut": "12", "force": "true"}
    headers = logged["headers"]
    assert headers["if-match"] == etag
    assert headers["if-none-match"] == '"other"'
    assert headers["if-modified-since"] == "Sat, 28 Nov 2026 10:00:00 GMT"
    assert headers["if-unmodified-since"].endswith(" GMT")
    assert headers["client-request-id"] == request_id
    assert response.client_request_id == request_id
    assert response.status == 202


async def test_force_false_is_sent_when_given(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """force=False is an explicit choice and goes on the wire as force=false."""
    ctl = control(batch_emulator)
    ctl.add_job("f")
    await client.delete_job("f", DeleteJobOptions(force=False))
    assert ctl.requests()[0]["query"]["force"] == "false"


async def test_each_attempt_without_a_request_id_gets_a_new_one(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """Without a caller's client-request-id every request carries a fresh GUID."""
    await client.delete_job("a")
    await client.delete_job("a")
    ids = {r["headers"]["client-request-id"] for r in control(batch_emulator).requests()}
    assert len(ids) == 2


async def test_precondition_failure_deletes_nothing(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """A stale If-Match is answered 412 ConditionNotMet and the job stays active."""
    ctl = control(batch_emulator)
    ctl.add_job("protected")
    response = await client.delete_job("protected", DeleteJobOptions(if_match="0x8D000000DEADBEE"))
    assert response.status == 412
    assert response.error_code == "ConditionNotMet"
    job = ctl.get_job("protected")
    assert job is not None
    assert job["state"] == "active"


async def test_missing_and_deleting_jobs_answer_with_batch_codes(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """A second delete of a deleting job is 409 JobBeingDeleted; an unknown job is 404 JobNotFound."""
    ctl = control(batch_emulator)
    ctl.configure(deleteDelayMs=60_000)
    ctl.add_job("twice")
    assert (await client.delete_job("twice")).status == 202
    second = await client.delete_job("TWICE")  # job IDs are case-insensitive
    assert (second.status, second.error_code) == (409, "JobBeingDeleted")
    missing = await client.delete_job("never-was")
    assert (missing.status, missing.error_code) == (404, "JobNotFound")
    assert missing.error is not None
    assert missing.error.message is not None
    assert missing.error.message.lang == "en-US"
    assert missing.error.message.value is not None
    assert "RequestId:" in missing.error.message.value


REFERENCE_CODES = [
    ("JobNotFound", 404),
    ("JobBeingDeleted", 409),
    ("JobBeingTerminated", 409),
    ("JobCompleted", 409),
    ("JobNotActive", 409),
    ("OperationInvalidForCurrentState", 409),
    ("ConditionNotMet", 412),
    ("MissingRequiredQueryParameter", 400),
    ("InvalidQueryParameterValue", 400),
    ("OutOfRangeQueryParameterValue", 400),
    ("UnsupportedQueryParameter", 400),
    ("InvalidHeaderValue", 400),
    ("MissingRequiredHeader", 400),
    ("InvalidUri", 400),
    ("MultipleConditionHeadersNotSupported", 400),
    ("UnsupportedRequestVersion", 400),
    ("InvalidInput", 400),
    ("AuthenticationFailed", 403),
    ("InsufficientAccountPermissions", 403),
    ("AccountIsDisabled", 403),
    ("AuthorizationFailure", 403),
    ("ResourceNotFound", 404),
    ("RequestBodyTooLarge", 413),
    ("TooManyRequests", 429),
    ("InternalError", 500),
    ("OperationTimedOut", 500),
    ("ServerBusy", 503),
]


async def test_every_reference_error_code_is_parsed_with_its_values(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """Each code of the reference table arrives as a BatchError with code, message and values."""
    ctl = control(batch_emulator)
    for code, status in REFERENCE_CODES:
        values = [{"key": "Detail", "value": f"about {code}"}, {"key": "Reason", "value": "test"}]
        ctl.add_fault(match={"jobId": "coded"}, status=status, code=code, values=values)
        response = await client.delete_job("coded")
        assert response.status == status, code
        assert response.error is not None, code
        assert response.error.code == code
        assert response.error.value("Detail") == f"about {code}"
        assert [(v.key, v.value) for v in response.error.values] == [
            ("Detail", f"about {code}"),
            ("Reason", "test"),
        ]
        assert response.error.raw["code"] == code
        assert response.error.raw["values"] == values
        assert response.raw_body is None


async def test_real_validation_errors_carry_their_values(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """The emulator's own 400 for an unsupported api-version names the parameter in `values`."""

    async def token() -> str:
        return await client._token()  # the same credential

    other = BatchClient(batch_emulator.url, token, api_version="2001-01-01")
    try:
        response = await other.delete_job("x")
    finally:
        await other.aclose()
    assert response.status == 400
    assert response.error is not None
    assert response.error.value("QueryParameterName") == "api-version"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("empty", None),
        ("text", "bad gateway"),
        ("html", "<html"),
        ({"raw": '{"error": {"code": "Gateway"}}', "contentType": "application/json"}, '{"error"'),
    ],
)
async def test_error_bodies_that_are_not_batch_json(
    client: BatchClient, batch_emulator: BatchHandle, body: object, expected: str | None
) -> None:
    """Empty, plain-text, HTML and foreign-JSON bodies give no BatchError and keep the raw text."""
    control(batch_emulator).add_fault(status=502, body=body)
    response = await client.delete_job("gw")
    assert response.status == 502
    assert response.error is None
    if expected is None:
        assert response.raw_body is None
    else:
        assert response.raw_body is not None
        assert expected in response.raw_body.lower() or expected in response.raw_body
        assert len(response.raw_body) <= 4096


async def test_huge_error_body_is_cut(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """A 1 MB error page is read only up to a bound and kept as 4 KiB of text."""
    control(batch_emulator).add_fault(status=500, body={"raw": "x" * 1_000_000, "contentType": "text/plain"})
    response = await client.delete_job("big")
    assert response.status == 500
    assert response.raw_body == "x" * 4096


async def test_retry_after_in_seconds_and_as_a_date(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """Retry-After is read from delta-seconds and from an HTTP-date."""
    ctl = control(batch_emulator)
    ctl.add_fault(status=429, code="TooManyRequests", retryAfter="7")
    first = await client.delete_job("t")
    assert first.retry_after == 7.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    ctl.add_fault(status=503, code="ServerBusy", retryAfter=when)
    second = await client.delete_job("t")
    assert second.retry_after is not None
    assert 100 < second.retry_after <= 120
    ctl.add_fault(status=503, code="ServerBusy", retryAfter="soon")
    assert (await client.delete_job("t")).retry_after is None


async def test_one_token_request_serves_a_thousand_deletes(
    client: BatchClient, batch_emulator: BatchHandle, identity_endpoint: IdentityHandle
) -> None:
    """azure-identity's cache means 1,000 deletes cost exactly one token request."""
    control(batch_emulator).configure(autoCreate=True)
    before = identity_endpoint.control.stats()["tokenRequests"]

    async def worker(n: int) -> None:
        for i in range(n, 1000, 16):
            assert (await client.delete_job(f"j{i}")).status == 202

    await asyncio.gather(*(worker(n) for n in range(16)))
    stats = identity_endpoint.control.stats()
    assert stats["tokenRequests"] - before == 1
    assert list(stats["byResource"]) == ["https://batch.core.windows.net/"]
    # Every delete reached Batch. Not a count of requests: aiohttp re-sends an idempotent request once when a
    # pooled connection turns out closed (docs/emulators.md, "The Batch client"), and on a loaded machine the
    # emulator may close an idle one, so 1,001 requests can carry these 1,000 deletes.
    paths = {r["path"] for r in control(batch_emulator).requests() if r["method"] == "DELETE"}
    assert paths >= {f"/jobs/j{i}" for i in range(1000)}


@pytest.mark.parametrize(
    "job_id",
    ["../pools/x", "a%2Fb", "a/b", "x" * 65, "a\r\nX-Evil: 1", "a\nb", "jöb", "", "a b", "a?b", "a#b", "."],
)
async def test_hostile_job_ids_send_nothing(
    client: BatchClient, batch_emulator: BatchHandle, job_id: str
) -> None:
    """A job ID outside ^[A-Za-z0-9_-]{1,64}$ is refused before any request is made."""
    with pytest.raises(InvalidRequestError) as info:
        await client.delete_job(job_id)
    assert info.value.field == "jobId"
    assert control(batch_emulator).requests() == []


@pytest.mark.parametrize("etag", ["a\r\nb", "a\nb", "\x00", "tab\there", "é"])
async def test_header_values_with_control_characters_send_nothing(
    client: BatchClient, batch_emulator: BatchHandle, etag: str
) -> None:
    """An ETag with a control character (or non-ASCII) cannot split a header: nothing is sent."""
    with pytest.raises(InvalidRequestError):
        await client.delete_job("ok", DeleteJobOptions(if_match=etag))
    with pytest.raises(InvalidRequestError):
        await client.delete_job("ok", DeleteJobOptions(if_none_match=etag))
    assert control(batch_emulator).requests() == []


async def test_naive_dates_and_bad_request_ids_send_nothing(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """A date without an offset, a braced request id or a zero timeOut is refused locally."""
    for options in (
        DeleteJobOptions(if_modified_since=datetime(2026, 1, 1)),
        DeleteJobOptions(client_request_id="{9C4D50EE-2D56-4CD3-8152-34347DC9F2B0}"),
        DeleteJobOptions(time_out=0),
    ):
        with pytest.raises(InvalidRequestError):
            await client.delete_job("ok", options)
    assert control(batch_emulator).requests() == []


@pytest.mark.parametrize("endpoint", ["http://batch.example.com", "ftp://127.0.0.1", "https://u:p@h.example"])
def test_unsafe_endpoints_are_refused(endpoint: str) -> None:
    """The client itself refuses plain http to a non-loopback host (defence in depth over settings)."""

    async def token() -> str:
        raise AssertionError("no token may be fetched for a refused endpoint")

    with pytest.raises(SettingsError):
        BatchClient(endpoint, token)


async def test_redirect_is_never_followed(
    client: BatchClient, batch_emulator: BatchHandle, second_batch_emulator: BatchHandle
) -> None:
    """A 307 to another host is returned as an answer; the other host sees no request, no token."""
    target = f"{second_batch_emulator.url}/jobs/r?api-version=2025-06-01"
    control(batch_emulator).add_fault(status=307, redirect=target)
    response = await client.delete_job("r")
    assert response.status == 307
    assert response.location == target
    assert control(second_batch_emulator).requests() == []


async def test_dropped_connection_is_a_connection_error(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """A connection closed without an answer raises BatchTransportError(kind='connection')."""
    ctl = control(batch_emulator)
    # Unlimited: aiohttp itself retries an idempotent request once on a dropped pooled connection.
    ctl.add_fault(drop=True, times=None)
    with pytest.raises(BatchTransportError) as info:
        await client.delete_job("d")
    assert info.value.kind == "connection"
    assert "Bearer" not in str(info.value)
    ctl.clear_faults()
    # The pool recovers: the next request goes through on a new connection.
    assert (await client.delete_job("d")).status == 404


async def test_slow_answer_beyond_the_read_timeout_is_a_timeout(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """With timeOut=1 the client waits 1 s plus its margin, then raises kind='timeout'."""
    control(batch_emulator).add_fault(latencyMs=5000)
    with pytest.raises(BatchTransportError) as info:
        await client.delete_job("slow", DeleteJobOptions(time_out=1))
    assert info.value.kind == "timeout"


async def test_slow_answer_within_the_timeout_is_awaited(
    client: BatchClient, batch_emulator: BatchHandle
) -> None:
    """An answer slower than the margin but inside timeOut + margin is received."""
    control(batch_emulator).add_fault(latencyMs=800)
    response = await client.delete_job("slow", DeleteJobOptions(time_out=2))
    assert response.status == 404


def test_read_timeout_follows_time_out() -> None:
    """The read timeout is min(timeOut, 30) plus the margin: the service never spends longer."""

    async def token() -> str:
        return ""

    async def check() -> None:
        c = BatchClient("http://127.0.0.1:1", token, read_timeout_margin=10)
        try:
            assert c.read_timeout(None) == 40
            assert c.read_timeout(5) == 15
            assert c.read_timeout(300) == 40
        finally:
            await c.aclose()

    asyncio.run(check())


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://acct.westeurope.batch.azure.com",
        "https://acct.westeurope.batch.azure.com:443",
        "https://batch.example.com/prefix/a%20b",
        "http://127.0.0.1:8080",
        "https://[::1]:8443",
    ],
)
@pytest.mark.parametrize(
    "query", [{"api-version": "2025-06-01"}, {"api-version": "a b&c=d/é", "timeOut": "30", "force": "true"}]
)
def test_request_urls_equal_what_httpx_parses(endpoint: str, query: dict[str, str]) -> None:
    """The request URL, built from the endpoint's parsed form, is the one httpx makes of the same text."""
    text = urlencode(query)
    built = _with_target(httpx.URL(endpoint), "/jobs/Job_1-x", text)
    parsed = httpx.URL(f"{endpoint}/jobs/Job_1-x?{text}")
    assert built == parsed
    assert str(built) == str(parsed)
    assert (built.scheme, built.host, built.port) == (parsed.scheme, parsed.host, parsed.port)
    assert (built.raw_path, built.path, built.params) == (parsed.raw_path, parsed.path, parsed.params)
