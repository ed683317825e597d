"""The credential that gets Batch tokens, and the single-flight cache in front of it.

azure-identity's async credentials cache tokens, but concurrent calls on a cold or expiring cache each
go to the identity endpoint (measured: 16 concurrent first deletes made 16 token requests). `BatchToken`
lets one caller refresh while the others wait, and keeps serving a still-valid token when a refresh fails,
so an identity-endpoint outage only matters once the token has really expired.

`BATCH_CREDENTIAL=developer` swaps in the developer's own Azure login for local runs against a real
Batch account; it is refused where Azure hosts the app (see `shared.settings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from shared.settings import Settings

__all__ = ["BATCH_SCOPE", "BatchToken", "create_credential"]

# The double slash is Batch's real scope (the SDK and the REST spec both use it).
BATCH_SCOPE = "https://batch.core.windows.net//.default"
# Refresh this long before expiry (azure-identity's own offset), or at half-life for short tokens.
_REFRESH_OFFSET = 300.0


def create_credential(settings: Settings) -> AsyncTokenCredential:
    """Build the async credential the settings ask for. Call it inside the loop that uses it."""
    if settings.credential == "developer":
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - dev-only path

        # Managed identity is excluded so that a laptop never probes IMDS for seconds.
        return DefaultAzureCredential(exclude_managed_identity_credential=True)
    from azure.identity.aio import ManagedIdentityCredential  # noqa: PLC0415 - keeps import lazy

    if settings.client_id is not None:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return ManagedIdentityCredential()


class BatchToken:
    """`await token()` returns a bearer token for Batch: one refresh at a time, cached in between."""

    def __init__(self, credential: AsyncTokenCredential, *, clock: Callable[[], float] = time.time) -> None:
        self._credential = credential
        self._clock = clock
        self._token: AccessToken | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token.token
        async with self._lock:
            now = self._clock()
            token = self._token
            if token is not None and now < self._refresh_at:
                return token.token  # another caller refreshed while we waited
            try:
                fresh = await self._credential.get_token(BATCH_SCOPE)
            except Exception:
                if token is not None and now < token.expires_on:
                    return token.token  # the old token still works: keep going, retry later
                raise
            lifetime = max(0.0, fresh.expires_on - now)
            self._token = fresh
            self._refresh_at = now + max(lifetime - _REFRESH_OFFSET, lifetime / 2)
            return fresh.token

    async def close(self) -> None:
        await self._credential.close()
