"""Fixtures and helpers for talking to the Batch emulator the way a Batch client would."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from emulators.control import tls_context
from emulators.identity import make_token
from tests.conftest import BatchHandle

API_VERSION = "2025-06-01"
BATCH_RESOURCE = "https://batch.core.windows.net/"
_MESSAGE = re.compile(r"(?s)(.+)\nRequestId:([0-9a-f-]{36})\nTime:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")


def wait_until(check: Callable[[], bool], deadline: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail after ``deadline`` seconds (no fixed sleeps)."""
    give_up = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < give_up, "condition not reached before the deadline"


def bearer(resource: str = BATCH_RESOURCE, lifetime: int = 3600, now: int | None = None) -> str:
    """An ``Authorization`` value with a token like the identity endpoint's."""
    issued = int(time.time()) if now is None else now
    return "Bearer " + make_token(resource, str(uuid.uuid4()), lifetime, issued)


def assert_batch_error(
    response: httpx.Response, status: int, code: str, values: dict[str, str] | None = None
) -> dict[str, Any]:
    """Check Batch's error shape exactly (and ``values`` when given); returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json;odata=minimalmetadata"
    assert response.headers["DataServiceVersion"] == "3.0"
    request_id = response.headers["request-id"]
    uuid.UUID(request_id)
    body: dict[str, Any] = response.json()
    assert set(body) - {"values"} == {"odata.metadata", "code", "message"}
    assert body.get("values") != []  # omitted when empty
    assert body["odata.metadata"].endswith(
        "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
    )
    assert body["code"] == code
    assert body["message"]["lang"] == "en-US"
    match = _MESSAGE.fullmatch(body["message"]["value"])
    assert match, body["message"]["value"]
    assert match.group(2) == request_id
    if values is not None:
        assert body.get("values", []) == [{"key": k, "value": v} for k, v in values.items()]
    return body


class BatchClient:
    """Raw Batch data-plane calls over httpx (redirects never followed, token preset)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": bearer()},
            follow_redirects=False,
            timeout=timeout,
            verify=tls_context(),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        api_version: str | None = API_VERSION,
        **kwargs: Any,
    ) -> httpx.Response:
        query = dict(params or {})
        if api_version is not None:
            query = {"api-version": api_version, **query}
        return self.http.request(method, path, params=query, headers=headers, **kwargs)

    def delete(self, job_id: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", f"/jobs/{job_id}", **kwargs)

    def get(self, job_id: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", f"/jobs/{job_id}", **kwargs)

    def create(self, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("POST", "/jobs", json=body, **kwargs)

    def update(self, job_id: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", f"/jobs/{job_id}", json=body, **kwargs)

    def terminate(self, job_id: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", f"/jobs/{job_id}/terminate", **kwargs)

    def wait_for_status(self, job_id: str, status: int, deadline: float = 5.0) -> None:
        """Poll ``GET /jobs/{id}`` until it answers ``status`` (fails after ``deadline`` seconds)."""
        wait_until(lambda: self.get(job_id).status_code == status, deadline)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """A plain client for one-off calls (one per session: building clients costs ~30 ms each)."""
    with httpx.Client(verify=tls_context(), follow_redirects=False) as client:
        yield client


@pytest.fixture
def batch(batch_emulator: BatchHandle) -> Iterator[BatchClient]:
    """A data-plane client for the (freshly reset) Batch emulator."""
    client = BatchClient(batch_emulator.url)
    try:
        yield client
    finally:
        client.http.close()
