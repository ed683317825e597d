"""httpx requests over aiohttp's pool, against the Batch emulator over real sockets.

Without a token the emulator answers 401 (or whatever fault is installed): an answer either way, which is
all the transport is about. The Batch client's own tests cover the same path through `BatchClient`.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.aiohttp_transport import AiohttpTransport
from tests.conftest import BatchHandle

TIMEOUT = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport()
    yield transport
    await transport.aclose()


def delete(url: str, *, read: float = 5.0) -> httpx.Request:
    return httpx.Request("DELETE", url, extensions={"timeout": {**TIMEOUT, "read": read}})


async def test_an_answer_comes_back_as_an_httpx_response(
    transport: AiohttpTransport, batch_emulator: BatchHandle
) -> None:
    """Status, headers and body arrive as httpx's; the request reached the wire with its own headers only."""
    request = httpx.Request(
        "DELETE",
        f"{batch_emulator.url}/jobs/j?api-version=2025-06-01",
        headers={"client-request-id": "9C4D50EE-2D56-4CD3-8152-34347DC9F2B0", "content-length": "0"},
        extensions={"timeout": TIMEOUT},
    )
    response = await transport.handle_async_request(request)
    body = await response.aread()
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert b"AuthenticationFailed" in body
    (logged,) = batch_emulator.control.requests()
    assert logged["path"] == "/jobs/j"
    assert logged["query"] == {"api-version": "2025-06-01"}
    # No header of aiohttp's own: no User-Agent, Accept or Accept-Encoding it was not given.
    assert set(logged["headers"]) == {"host", "client-request-id", "content-length"}


async def test_a_redirect_is_an_answer(transport: AiohttpTransport, batch_emulator: BatchHandle) -> None:
    """A 307 comes back as it is, with its Location; nothing follows it."""
    target = f"{batch_emulator.url}/jobs/elsewhere?api-version=2025-06-01"
    batch_emulator.control.add_fault(status=307, redirect=target)
    response = await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/r"))
    await response.aclose()
    assert (response.status_code, response.headers["location"]) == (307, target)
    assert [r["path"] for r in batch_emulator.control.requests()] == ["/jobs/r"]


async def test_proxies_from_the_environment_are_ignored(
    transport: AiohttpTransport, batch_emulator: BatchHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY pointing nowhere changes nothing: the request goes straight to its host."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    response = await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/p"))
    await response.aclose()
    assert response.status_code == 401


async def test_a_large_body_is_streamed_and_can_be_left_unread(
    transport: AiohttpTransport, batch_emulator: BatchHandle
) -> None:
    """A 1 MB body arrives in chunks; closing after the first drops that connection, and the pool goes on."""
    batch_emulator.control.add_fault(status=500, body={"raw": "x" * 1_000_000, "contentType": "text/plain"})
    response = await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/big"))
    async for chunk in response.aiter_raw():
        assert chunk
        assert len(chunk) < 1_000_000
        break
    await response.aclose()
    again = await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/big"))
    await again.aclose()
    assert again.status_code == 401


async def test_failures_map_to_httpx_errors_by_cause(
    transport: AiohttpTransport, batch_emulator: BatchHandle
) -> None:
    """Refused: ConnectError. Closed without an answer: RemoteProtocolError. Too slow: ReadTimeout."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(delete(f"http://127.0.0.1:{closed_port}/jobs/x"))

    ctl = batch_emulator.control
    ctl.add_fault(drop=True, times=None)  # aiohttp retries a dropped idempotent request once on its own
    with pytest.raises(httpx.RemoteProtocolError):
        await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/x"))
    ctl.clear_faults()

    ctl.add_fault(latencyMs=2000)
    with pytest.raises(httpx.ReadTimeout):
        await transport.handle_async_request(delete(f"{batch_emulator.url}/jobs/x", read=0.3))
