"""The Application Insights ingestion stand-in (emulators/ingestion.py) answers as Breeze does for a resource
with local authentication off: only an Entra token for Azure Monitor gets telemetry in."""

from __future__ import annotations

import gzip
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulators.identity import make_token
from tests.conftest import IngestionHandle

MONITOR = "https://monitor.azure.com/"
CLIENT_ID = "9a1e2b3c-0000-4000-8000-000000000001"


def envelope(name: str = "Microsoft.ApplicationInsights.Message", **data: Any) -> dict[str, Any]:
    return {
        "name": name,
        "iKey": "00000000-0000-0000-0000-000000000000",
        "time": "2026-01-01T00:00:00.000000Z",
        "tags": {"ai.operation.id": "0af7651916cd43dd8448eb211c80319c"},
        "data": {"baseType": "MessageData", "baseData": {"ver": 2, "message": "hello", **data}},
    }


def bearer(resource: str = MONITOR, lifetime: int = 3600) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(resource, CLIENT_ID, lifetime, int(time.time()))}"}


@pytest.fixture
def http(ingestion: IngestionHandle) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=ingestion.certificate)
    with httpx.Client(base_url=ingestion.url, verify=context, timeout=10) as client:
        yield client


def test_an_upload_with_a_monitor_token_is_accepted_and_kept(
    http: httpx.Client, ingestion: IngestionHandle
) -> None:
    """200 with Breeze's TrackResponse; the envelopes are readable over the control API, and the upload
    is noted with the token's audience and client id (never the token)."""
    items = [envelope(), envelope(severityLevel=3)]
    response = http.post("/v2.1/track", json=items, headers=bearer())
    assert response.status_code == 200
    assert response.json() == {"itemsReceived": 2, "itemsAccepted": 2, "errors": []}
    assert ingestion.control.envelopes() == items
    assert ingestion.control.envelopes(since=1) == items[1:]
    (upload,) = ingestion.control.uploads()
    assert (upload["status"], upload["items"], upload["audience"], upload["clientId"]) == (
        200,
        2,
        MONITOR,
        CLIENT_ID,
    )
    assert "Bearer" not in json.dumps(upload)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "accepts only Entra ID tokens"),
        ({"Authorization": "SharedKey abc"}, "accepts only Entra ID tokens"),
        ({"Authorization": "Bearer not-a-jwt"}, "not a well-formed JWT"),
        (bearer("https://batch.core.windows.net/"), "accepts only 'https://monitor.azure.com/'"),
        (bearer(lifetime=-60), "expired"),
    ],
    ids=["none", "not-bearer", "not-a-jwt", "batch-audience", "expired"],
)
def test_an_upload_without_a_valid_monitor_token_is_refused_with_401(
    http: httpx.Client, ingestion: IngestionHandle, headers: dict[str, str], why: str
) -> None:
    """Local authentication off: no Entra token for Azure Monitor, no telemetry (401 for every item;
    the exporter treats 401 as retryable and keeps the batch for later)."""
    response = http.post("/v2.1/track", json=[envelope()], headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert (body["itemsReceived"], body["itemsAccepted"]) == (1, 0)
    assert [(e["index"], e["statusCode"]) for e in body["errors"]] == [(0, 401)]
    assert why in body["errors"][0]["message"]
    assert ingestion.control.envelopes() == []
    (upload,) = ingestion.control.uploads()
    assert upload["status"] == 401
    assert why in upload["refused"]


def test_gzip_and_newline_delimited_json_are_read_and_a_doubled_slash_is_tolerated(
    http: httpx.Client, ingestion: IngestionHandle
) -> None:
    """The endpoint protocol takes ``x-json-stream`` (one envelope a line) and gzip; the exporter joins an
    IngestionEndpoint ending in "/" with "/v2.1/track"."""
    items = [envelope(), envelope()]
    body = gzip.compress("\n".join(json.dumps(item) for item in items).encode())
    headers = {**bearer(), "Content-Type": "application/x-json-stream", "Content-Encoding": "gzip"}
    response = http.post(f"{ingestion.url}//v2.1/track", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["itemsAccepted"] == 2
    assert ingestion.control.envelopes() == items
    assert ingestion.control.uploads()[0]["contentEncoding"] == "gzip"


def test_an_incomplete_envelope_is_refused_alone_with_206(
    http: httpx.Client, ingestion: IngestionHandle
) -> None:
    """Partial success: the item without ``time`` gets 400 at its index, the others are kept."""
    broken = envelope()
    del broken["time"]
    response = http.post("/v2.1/track", json=[envelope(), broken, envelope()], headers=bearer())
    assert response.status_code == 206
    body = response.json()
    assert (body["itemsReceived"], body["itemsAccepted"]) == (3, 2)
    assert [(e["index"], e["statusCode"]) for e in body["errors"]] == [(1, 400)]
    assert "time" in body["errors"][0]["message"]
    assert len(ingestion.control.envelopes()) == 2


@pytest.mark.parametrize(
    ("content", "headers"),
    [(b"{not json", {}), (b"not gzip", {"Content-Encoding": "gzip"}), (b"\xff\xfe", {})],
    ids=["json", "gzip", "utf-8"],
)
def test_a_body_that_cannot_be_read_is_refused_with_400(
    http: httpx.Client, ingestion: IngestionHandle, content: bytes, headers: dict[str, str]
) -> None:
    response = http.post("/v2.1/track", content=content, headers={**bearer(), **headers})
    assert response.status_code == 400
    assert response.json()["errors"][0]["statusCode"] == 400
    assert ingestion.control.envelopes() == []


def test_other_paths_and_methods_are_refused(http: httpx.Client) -> None:
    assert http.post("/v2/trackz", json=[], headers=bearer()).status_code == 404
    assert http.get("/v2.1/track", headers=bearer()).status_code == 405
    assert http.get("/_emulator/nothing").status_code == 404
    assert http.get("/_emulator/envelopes", params={"since": "x"}).status_code == 400


def test_the_stand_in_speaks_https_only(ingestion: IngestionHandle) -> None:
    """A bearer token never travels over plain HTTP (azure-core refuses to send one), so neither does
    the stand-in answer it: its certificate is for 127.0.0.1, trusted only through the file it wrote."""
    assert ingestion.url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{ingestion.url}/_emulator/health", timeout=5)  # the system's CAs do not know it
    plain = ingestion.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/_emulator/health", timeout=5)
