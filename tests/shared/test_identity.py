"""BatchToken over the real azure-identity ManagedIdentityCredential and the local identity endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential

from shared.identity import BATCH_SCOPE, BatchToken, create_credential
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
    """Refreshed 5 minutes before expiry (half-life for short tokens), once for many callers."""
    clock = Clock()
    credential = ScriptedCredential(clock, lifetime)
    token = BatchToken(credential, clock=clock)  # type: ignore[arg-type]
    assert await token() == "token-1"
    clock.now += refresh_after - 1
    assert await token() == "token-1"
    clock.now += 2
    assert set(await asyncio.gather(*(token() for _ in range(16)))) == {"token-2"}
    assert credential.calls == 2


async def test_failed_refresh_keeps_a_valid_token_and_an_expired_one_raises() -> None:
    """While the old token is valid an identity outage is invisible; after expiry it raises."""
    clock = Clock()
    credential = ScriptedCredential(clock, 3600)
    token = BatchToken(credential, clock=clock)  # type: ignore[arg-type]
    assert await token() == "token-1"
    credential.failing = True
    clock.now += 3400  # past the refresh point, before expiry
    assert await token() == "token-1"
    clock.now += 300  # past expiry
    with pytest.raises(ClientAuthenticationError):
        await token()
    credential.failing = False
    assert await token() == "token-4"


async def test_identity_endpoint_down_on_a_cold_cache_raises(
    credential: ManagedIdentityCredential, identity_endpoint: IdentityHandle
) -> None:
    """With no token yet, an identity endpoint failure surfaces (the message will come back)."""
    identity_endpoint.control.add_fault(status=400, times=None)
    token = BatchToken(credential)
    with pytest.raises(ClientAuthenticationError) as info:
        await token()
    assert identity_endpoint.secret not in str(info.value)


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
