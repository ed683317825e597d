"""The managed-identity endpoint, driven by the real azure-identity credentials (sync and aio)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

from emulators import EmulatorStartError, RunningProcess, start
from emulators.control import IdentityEndpoint, tls_context
from tests.conftest import BatchHandle, IdentityHandle
from tests.polling import wait_for

SCOPE = "https://batch.core.windows.net//.default"
RESOURCE = "https://batch.core.windows.net/"
USER_ASSIGNED = "0f8f7a4e-1d2c-4b6a-9e3f-5a7b9c1d3e5f"


def claims(token: str) -> dict[str, Any]:
    header, payload, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "none", "typ": "JWT"}
    assert signature == os.environ.get("EMULATOR_CANARY", "")  # unsigned: the test canary, if any
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return decoded


def token_request(identity: IdentityHandle, *, secret: str | None = None, **params: str) -> httpx.Response:
    """A raw token request; an empty parameter value leaves that parameter out."""
    query = {"api-version": "2019-08-01", "resource": RESOURCE, **params}
    headers = {"X-IDENTITY-HEADER": identity.secret if secret is None else secret}
    query = {k: v for k, v in query.items() if v}
    return httpx.get(identity.url, params=query, headers=headers, verify=tls_context())


@pytest.fixture(scope="module")
def user_assigned_process(identity_secret: str) -> Iterator[RunningProcess]:
    """An endpoint that serves only one user-assigned identity (its secret given by --secret)."""
    # --secret=VALUE: a token_urlsafe secret may begin with "-", which argparse would take for an option
    args = (f"--secret={identity_secret}", "--client-id", USER_ASSIGNED, "--lifetime-seconds", "600")
    with start("emulators.identity", *args) as process:
        yield process


def test_ready_line_names_the_token_url(identity_endpoint: IdentityHandle) -> None:
    """The process announces IDENTITY_ENDPOINT's value: http://127.0.0.1:PORT/msi/token."""
    assert identity_endpoint.url.endswith("/msi/token")
    line = identity_endpoint.process.stdout_tail()
    assert line == f"Identity endpoint listening on {identity_endpoint.url}\n"


def test_sync_credential_gets_a_batch_token(identity_env: IdentityHandle) -> None:
    """ManagedIdentityCredential gets a token for Batch's scope; the resource sent drops /.default."""
    token = ManagedIdentityCredential().get_token(SCOPE)
    payload = claims(token.token)
    assert payload["aud"] == RESOURCE
    assert abs(token.expires_on - (time.time() + 3600)) < 60
    stats = identity_env.control.stats()
    assert stats["byResource"] == {RESOURCE: 1}
    assert stats["byClientId"] == {"system-assigned": 1}


async def test_async_credential_gets_a_batch_token(identity_env: IdentityHandle) -> None:
    """The aio ManagedIdentityCredential (aiohttp transport) gets the same token."""
    async with AsyncManagedIdentityCredential() as credential:
        token = await credential.get_token(SCOPE)
    assert claims(token.token)["aud"] == RESOURCE
    assert identity_env.control.stats()["byResource"] == {RESOURCE: 1}


def test_credential_caches_the_token(identity_env: IdentityHandle) -> None:
    """A credential asks the endpoint once, then serves get_token from its cache."""
    credential = ManagedIdentityCredential()
    tokens = {credential.get_token(SCOPE).token for _ in range(20)}
    assert len(tokens) == 1
    assert identity_env.control.stats()["tokenRequests"] == 1


def test_batch_emulator_accepts_the_token(identity_env: IdentityHandle, batch_emulator: BatchHandle) -> None:
    """A token from the real credential authenticates a DELETE at the Batch emulator."""
    batch_emulator.control.add_job("job-1")
    token = ManagedIdentityCredential().get_token(SCOPE).token
    url = f"{batch_emulator.url}/jobs/job-1?api-version=2025-06-01"
    response = httpx.delete(url, headers={"Authorization": f"Bearer {token}"}, verify=tls_context())
    assert response.status_code == 202
    (entry,) = batch_emulator.control.requests()
    assert entry["tokenClaims"]["appid"] == identity_env.control.config()["systemClientId"]


def test_token_response_shape(identity_endpoint: IdentityHandle) -> None:
    """200 JSON: access_token, expires_on (epoch seconds as a string), resource, token_type, client_id."""
    response = token_request(identity_endpoint)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert isinstance(body["expires_on"], str)
    assert (body["resource"], body["token_type"]) == (RESOURCE, "Bearer")
    config = identity_endpoint.control.config()
    assert body["client_id"] == config["systemClientId"]
    payload = claims(body["access_token"])
    assert payload["exp"] == int(body["expires_on"])
    assert payload["iat"] == payload["nbf"] == payload["exp"] - 3600
    assert payload["iss"] == f"https://sts.windows.net/{config['tenantId']}/"
    assert payload["tid"] == config["tenantId"]
    assert payload["appid"] == body["client_id"]
    assert payload["sub"] == payload["oid"]


def test_object_id_is_stable_per_client_id(identity_endpoint: IdentityHandle) -> None:
    """The same client id always gets the same oid; another client id another oid."""
    first = claims(token_request(identity_endpoint, client_id="a").json()["access_token"])
    again = claims(token_request(identity_endpoint, client_id="a").json()["access_token"])
    other = claims(token_request(identity_endpoint, client_id="b").json()["access_token"])
    assert first["oid"] == again["oid"] != other["oid"]
    assert first["appid"] == "a"


@pytest.mark.parametrize("secret", ["", "wrong"])
def test_wrong_secret_is_401(identity_endpoint: IdentityHandle, secret: str) -> None:
    """A missing or wrong X-IDENTITY-HEADER is refused with a 401 JSON error."""
    response = token_request(identity_endpoint, secret=secret)
    assert response.status_code == 401
    assert set(response.json()) == {"statusCode", "message", "correlationId"}


@pytest.mark.parametrize("params", [{"api-version": ""}, {"api-version": "2018-02-01"}, {"resource": ""}])
def test_bad_query_is_400(identity_endpoint: IdentityHandle, params: dict[str, str]) -> None:
    """A missing or wrong api-version, or a missing resource: 400 JSON error."""
    response = token_request(identity_endpoint, **params)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


def test_credential_with_wrong_secret_fails(
    identity_env: IdentityHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-identity surfaces the 401 as ClientAuthenticationError."""
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(SCOPE)


def test_user_assigned_identity(
    user_assigned_process: RunningProcess, identity_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --client-id, that identity gets tokens (appid = its client id, --lifetime-seconds)."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", user_assigned_process.url)
    monkeypatch.setenv("IDENTITY_HEADER", identity_secret)
    token = ManagedIdentityCredential(client_id=USER_ASSIGNED).get_token(SCOPE)
    payload = claims(token.token)
    assert payload["appid"] == USER_ASSIGNED
    assert payload["exp"] - payload["iat"] == 600


def test_unknown_client_id_is_400(
    user_assigned_process: RunningProcess, identity_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client id the endpoint does not serve: 400 with App Service's message."""
    params = {"api-version": "2019-08-01", "resource": RESOURCE, "client_id": "someone-else"}
    headers = {"X-IDENTITY-HEADER": identity_secret}
    response = httpx.get(user_assigned_process.url, params=params, headers=headers, verify=tls_context())
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == (
        "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
    )
    assert (body["statusCode"], set(body)) == (400, {"statusCode", "message", "correlationId"})
    monkeypatch.setenv("IDENTITY_ENDPOINT", user_assigned_process.url)
    monkeypatch.setenv("IDENTITY_HEADER", identity_secret)
    with pytest.raises(ClientAuthenticationError, match="No User Assigned"):
        ManagedIdentityCredential(client_id="someone-else").get_token(SCOPE)


def test_lifetime_is_configurable(identity_endpoint: IdentityHandle) -> None:
    """configure(lifetime_seconds=...) sets the next tokens' lifetime; reset restores it."""
    identity_endpoint.control.configure(lifetime_seconds=120)
    body = token_request(identity_endpoint).json()
    assert int(body["expires_on"]) - int(time.time()) in range(118, 121)
    identity_endpoint.control.reset()
    assert identity_endpoint.control.config()["lifetimeSeconds"] == 3600


@pytest.mark.parametrize("fault", [{"status": 500}, {"drop": True}])
def test_credential_retries_one_failure(identity_env: IdentityHandle, fault: dict[str, Any]) -> None:
    """azure-identity retries a 500 or a dropped connection once and then gets its token."""
    identity_env.control.add_fault(**fault)
    ManagedIdentityCredential().get_token(SCOPE)
    stats = identity_env.control.stats()
    assert stats["tokenRequests"] == 2
    assert sum(stats["byStatus"].values()) == 2
    assert stats["byStatus"]["200"] == 1


async def test_async_credential_reports_a_client_error(identity_env: IdentityHandle) -> None:
    """A 400 from the endpoint is not retried: the aio credential raises at once."""
    identity_env.control.add_fault(status=400)
    async with AsyncManagedIdentityCredential() as credential:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token(SCOPE)
    assert identity_env.control.stats()["tokenRequests"] == 1


def test_faults_count_down(identity_endpoint: IdentityHandle) -> None:
    """times=2 fails two requests, then the endpoint answers; times=None never stops."""
    identity_endpoint.control.add_fault(status=503, times=2)
    statuses = [token_request(identity_endpoint).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    identity_endpoint.control.add_fault(status=500, times=None)
    assert [token_request(identity_endpoint).status_code for _ in range(3)] == [500] * 3
    identity_endpoint.control.clear_faults()
    assert token_request(identity_endpoint).status_code == 200


def test_a_fault_for_seconds_ends_by_itself(identity_endpoint: IdentityHandle) -> None:
    """forSeconds: every token request fails until the window closes, then the endpoint answers again
    without anyone clearing the fault (an outage that ends by itself)."""
    identity_endpoint.control.add_fault(status=503, times=None, for_seconds=0.5)
    assert token_request(identity_endpoint).status_code == 503
    wait_for(lambda: token_request(identity_endpoint).status_code == 200, "the window to close", 10)
    assert identity_endpoint.control.stats()["byStatus"]["503"] >= 1


def test_drop_and_latency_faults(identity_endpoint: IdentityHandle) -> None:
    """drop closes the connection unanswered; latencyMs alone answers late but normally."""
    identity_endpoint.control.add_fault(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        token_request(identity_endpoint)
    identity_endpoint.control.add_fault(latency_ms=150)
    started = time.monotonic()
    assert token_request(identity_endpoint).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_stats_and_reset(identity_endpoint: IdentityHandle) -> None:
    """stats count token requests by resource and client id; reset zeroes them."""
    token_request(identity_endpoint)
    token_request(identity_endpoint, client_id="c1", resource="https://vault.azure.net")
    stats = identity_endpoint.control.stats()
    assert stats["tokenRequests"] == 2
    assert stats["byResource"] == {RESOURCE: 1, "https://vault.azure.net": 1}
    assert stats["byClientId"] == {"system-assigned": 1, "c1": 1}
    identity_endpoint.control.reset()
    assert identity_endpoint.control.stats()["tokenRequests"] == 0


def test_invalid_control_calls(identity_endpoint: IdentityHandle) -> None:
    """Malformed faults and config are refused with 400."""
    with pytest.raises(httpx.HTTPStatusError):
        identity_endpoint.control.add_fault(times=0)
    with pytest.raises(httpx.HTTPStatusError):
        identity_endpoint.control.configure(lifetime_seconds=0)
    assert identity_endpoint.control.health()


def test_secret_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --secret or IDENTITY_HEADER the endpoint refuses to start."""
    monkeypatch.delenv("IDENTITY_HEADER", raising=False)
    with pytest.raises(EmulatorStartError, match="a secret is required"):
        start("emulators.identity")


def test_control_client_accepts_either_url(identity_endpoint: IdentityHandle) -> None:
    """IdentityEndpoint works from the token URL or the base URL."""
    base = identity_endpoint.url.removesuffix("/msi/token")
    with IdentityEndpoint(base) as control:
        assert control.token_url == identity_endpoint.url
