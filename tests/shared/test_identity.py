"""BatchToken over the real azure-identity ManagedIdentityCredential and the local identity endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential

from shared.identity import (
    BATCH_SCOPE,
    CREDENTIAL_OPTIONS,
    BatchToken,
    TokenUnavailableError,
    create_credential,
    managed_identity_credential,
)
from shared.settings import load_settings
from tests.conftest import IdentityHandle

pytestmark = pytest.mark.usefixtures("identity_env")


class Clock:
    """Time that tests move forward: the token's refresh point without waiting for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def credential() -> AsyncIterator[ManagedIdentityCredential]:
    async with ManagedIdentityCredential() as cred:
        yield cred


def requests(identity: IdentityHandle) -> int:
    return int(identity.control.stats()["tokenRequests"])


async def test_concurrent_first_calls_make_one_token_request(
    credential: ManagedIdentityCredential, identity_endpoint: IdentityHandle
) -> None:
    """64 callers on a cold cache share a single request to the identity endpoint."""
    token = BatchToken(credential)
    values = await asyncio.gather(*(token() for _ in range(64)))
    assert len(set(values)) == 1
    assert requests(identity_endpoint) == 1
    assert identity_endpoint.control.stats()["byResource"] == {"https://batch.core.windows.net/": 1}


async def test_scope_is_batch_double_slash() -> None:
    """The scope is Batch's own, with its double slash."""
    assert BATCH_SCOPE == "https://batch.core.windows.net//.default"


class ScriptedCredential:
    """Stands in for azure-identity only where time must pass (token expiry can't be waited for in a
    test): hands out numbered tokens with a chosen lifetime, or fails on demand."""

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.failing = False

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        assert scopes == (BATCH_SCOPE,)
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent callers pile up behind the lock
        if self.failing:
            raise ClientAuthenticationError("identity endpoint unavailable")
        return AccessToken(f"token-{self.calls}", int(self.clock.now + self.lifetime))

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(("lifetime", "refresh_after"), [(3600, 3300), (200, 100)])
async def test_token_is_refreshed_once_before_expiry(lifetime: int, refresh_after: int) -> None:
    """Refreshed 5 minutes before expiry (half-life for short tokens), once for many callers; while the old
    token stays valid nobody waits for the refresh, and once it is about to expire callers wait for it."""
    clock = Clock()
    start = clock.now
    credential = ScriptedCredential(clock, lifetime)
    token = BatchToken(credential, clock=clock)  # type: ignore[arg-type]
    assert await token() == "token-1"
    clock.now += refresh_after - 1
    assert await token() == "token-1"
    clock.now += 2  # past the refresh point: served at once, refreshed behind it
    assert set(await asyncio.gather(*(token() for _ in range(16)))) == {"token-1"}
    clock.now = start + lifetime - 30  # about to expire: callers wait for that same refresh
    assert set(await asyncio.gather(*(token() for _ in range(16)))) == {"token-2"}
    assert credential.calls == 2


async def test_failed_refresh_keeps_a_valid_token_and_an_expired_one_raises() -> None:
    """While the old token is valid an identity outage is invisible (and costs no caller any wait);
    after expiry it raises; once the endpoint is back, a new token."""
    clock = Clock()
    credential = ScriptedCredential(clock, 3600)
    token = BatchToken(credential, clock=clock)  # type: ignore[arg-type]
    assert await token() == "token-1"
    credential.failing = True
    clock.now += 3400  # past the refresh point, before expiry
    assert await token() == "token-1"
    assert await token() == "token-1"
    clock.now += 300  # past expiry
    with pytest.raises(
        TokenUnavailableError, match="ClientAuthenticationError: identity endpoint unavailable"
    ):
        await token()
    failed_calls = credential.calls
    credential.failing = False
    assert await token() == f"token-{failed_calls + 1}"


async def test_identity_endpoint_down_on_a_cold_cache_raises(
    credential: ManagedIdentityCredential, identity_endpoint: IdentityHandle
) -> None:
    """With no token yet, an identity endpoint failure surfaces as TokenUnavailableError, naming the
    failure and never the endpoint's secret (the processor then retries like a 503)."""
    identity_endpoint.control.add_fault(status=400, times=None)
    token = BatchToken(credential)
    with pytest.raises(TokenUnavailableError) as info:
        await token()
    assert str(info.value).startswith("ClientAuthenticationError: ")
    assert identity_endpoint.secret not in str(info.value)


async def test_a_failed_shared_request_fails_every_waiter_at_once(identity_endpoint: IdentityHandle) -> None:
    """Identity endpoint down, 16 callers on a cold cache: one token request (with the credential's own
    bounded retries) is made, and all 16 callers get its failure; they do not each try again in turn."""
    identity_endpoint.control.add_fault(status=500, times=None)
    credential = managed_identity_credential(None)
    token = BatchToken(credential)
    try:
        results = await asyncio.gather(*(token() for _ in range(16)), return_exceptions=True)
    finally:
        await token.close()
    assert all(isinstance(result, TokenUnavailableError) for result in results), results
    assert len({str(result) for result in results}) == 1
    tries = CREDENTIAL_OPTIONS["retry_total"] + 1
    assert 1 < requests(identity_endpoint) <= tries  # one request's tries, not 16 requests' tries


async def test_the_credential_gives_up_after_its_bounded_retries(identity_endpoint: IdentityHandle) -> None:
    """A 503 every time: the credential tries retry_total + 1 times, then fails; the next call makes a new
    request."""
    identity_endpoint.control.add_fault(status=503, times=None)
    token = BatchToken(managed_identity_credential(None))
    try:
        with pytest.raises(TokenUnavailableError):
            await token()
        assert requests(identity_endpoint) == CREDENTIAL_OPTIONS["retry_total"] + 1
        identity_endpoint.control.clear_faults()
        assert await token()  # the endpoint is back: a new request, a token
    finally:
        await token.close()


async def test_a_token_request_that_hangs_is_cut_off(
    credential: ManagedIdentityCredential, identity_endpoint: IdentityHandle
) -> None:
    """An endpoint that holds the request: the shared request ends at its own bound with a failure that
    says so, instead of holding every waiting invocation."""
    identity_endpoint.control.add_fault(latency_ms=30_000, times=1)
    token = BatchToken(credential, request_timeout=0.5)
    with pytest.raises(TokenUnavailableError, match=r"no token within 0\.5 s"):
        await token()


async def test_a_caller_that_stops_waiting_does_not_cancel_the_shared_request(
    credential: ManagedIdentityCredential, identity_endpoint: IdentityHandle
) -> None:
    """One caller gives up (its own deadline) while the shared request is under way: the other caller
    still gets the token from that same request."""
    identity_endpoint.control.add_fault(latency_ms=500, times=1)
    token = BatchToken(credential)

    async def impatient() -> str:
        async with asyncio.timeout(0.05):
            return await token()

    results = await asyncio.gather(impatient(), token(), return_exceptions=True)
    assert isinstance(results[0], TimeoutError)
    assert isinstance(results[1], str)
    assert requests(identity_endpoint) == 1


async def test_user_assigned_identity_uses_the_configured_client_id(
    identity_endpoint: IdentityHandle,
) -> None:
    """AZURE_CLIENT_ID reaches the identity endpoint as client_id."""
    client_id = "11111111-2222-3333-4444-555555555555"
    settings = load_settings(
        {
            "BATCH_ENDPOINT": "http://127.0.0.1:1",
            "DELETION_QUEUE": "q",
            "DEAD_LETTER_QUEUE": "dlq",
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
            "AZURE_CLIENT_ID": client_id,
        }
    )
    token = BatchToken(create_credential(settings))
    try:
        await token()
    finally:
        await token.close()
    assert identity_endpoint.control.stats()["byClientId"] == {client_id: 1}
