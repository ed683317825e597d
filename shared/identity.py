"""The credential that gets Batch tokens, and the single-flight cache in front of it.

azure-identity's async credentials cache tokens, but concurrent calls on a cold or expiring cache each
go to the identity endpoint (measured: 16 concurrent first deletes made 16 token requests). `BatchToken`
makes one request at a time and shares it: every caller waiting on a refresh gets its token, or its
failure, at the same moment. While the cached token is still valid, refreshes run behind it and nobody
waits for them, so a slow or failing identity endpoint only matters once the token has really expired.

The credential's own retries are bounded (`CREDENTIAL_OPTIONS`). By default azure-identity retries an
endpoint that answers 5xx for about 5 s, but one that takes the connection and never answers holds each try
for azure-core's default read timeout of 300 s (measured against the local endpoint: still waiting after
30 s), and every invocation waiting on it with it; the contract (section 3, step 2) wants a failure within
about 10 s, which the function then handles like Batch's 503.

`BATCH_CREDENTIAL=developer` swaps in the developer's own Azure login for local runs against a real
Batch account; it is refused where Azure hosts the app (see `shared.settings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from shared.settings import Settings

__all__ = [
    "BATCH_SCOPE",
    "CREDENTIAL_OPTIONS",
    "TOKEN_REQUEST_TIMEOUT",
    "BatchToken",
    "TokenUnavailableError",
    "create_credential",
    "managed_identity_credential",
]

# The double slash is Batch's real scope (the SDK and the REST spec both use it).
BATCH_SCOPE = "https://batch.core.windows.net//.default"
# Refresh this long before expiry (azure-identity's own offset), or at half-life for short tokens.
_REFRESH_OFFSET = 300.0
# A token is handed out while a refresh runs only if it stays valid this much longer (a Batch request's
# read timeout, plus a margin): Batch must not see it expire in flight.
_STILL_VALID_MARGIN = 60.0

# azure-identity passes a credential's keyword arguments to azure-core's retry policy and transport
# (azure/identity/_internal/pipeline.py: AsyncRetryPolicy(**kwargs), AioHttpTransport(**kwargs)):
# `timeout` is the retry policy's whole-operation bound, checked before each retry; `retry_*` are its
# counts and backoff (waits of about 0.5, 1, 2 s); the transport's connect and read timeouts bound each
# try. Measured against the local endpoint: 503 every time -> 4 tries, 3.0 s; no answer at all -> 2 tries,
# 11 s (the hard bound below is 15 s).
CREDENTIAL_OPTIONS: dict[str, Any] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 4,
    "timeout": 10,
    "connection_timeout": 5,
    "read_timeout": 5,
}
# A hard bound on one shared token request, whatever the credential does (its `timeout` is checked only
# between tries).
TOKEN_REQUEST_TIMEOUT = 15.0


class TokenUnavailableError(Exception):
    """No token for Batch: the identity endpoint failed, or answered too late. The message names the
    failure (the exception type and its first line), never a token."""


def managed_identity_credential(client_id: str | None) -> AsyncTokenCredential:
    """azure-identity's async managed identity credential, with its retries bounded."""
    from azure.identity.aio import ManagedIdentityCredential  # noqa: PLC0415 - keeps import lazy

    if client_id is not None:
        return ManagedIdentityCredential(client_id=client_id, **CREDENTIAL_OPTIONS)
    return ManagedIdentityCredential(**CREDENTIAL_OPTIONS)


def create_credential(settings: Settings) -> AsyncTokenCredential:
    """Build the async credential the settings ask for. Call it inside the loop that uses it."""
    if settings.credential == "developer":
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - dev-only path

        # Managed identity is excluded so that a laptop never probes IMDS for seconds.
        return DefaultAzureCredential(exclude_managed_identity_credential=True)
    return managed_identity_credential(settings.client_id)


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0][:300] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class BatchToken:
    """`await token()` returns a bearer token for Batch: one shared refresh at a time, cached in between.
    Raises `TokenUnavailableError` when the refresh fails and no valid token is left."""

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        clock: Callable[[], float] = time.time,
        request_timeout: float = TOKEN_REQUEST_TIMEOUT,
    ) -> None:
        self._credential = credential
        self._clock = clock
        self._request_timeout = request_timeout
        self._token: AccessToken | None = None
        self._refresh_at = 0.0
        self._refresh: asyncio.Future[AccessToken] | None = None

    async def __call__(self) -> str:
        token = self._token
        now = self._clock()
        if token is not None and now < self._refresh_at:
            return token.token
        refresh = self._refresh
        if refresh is None:
            refresh = self._refresh = asyncio.ensure_future(self._fetch())
            # Retrieved here too, so that a failure nobody waited for is not reported as unhandled.
            refresh.add_done_callback(lambda done: done.cancelled() or done.exception())
        if token is not None and now < token.expires_on - _STILL_VALID_MARGIN:
            # The old token still works: refresh behind it, so that a slow or failing identity endpoint
            # delays no invocation until the token really expires.
            return token.token
        # shield: a caller that stops waiting (its own deadline) does not cancel the others' request.
        return (await asyncio.shield(refresh)).token

    async def _fetch(self) -> AccessToken:
        try:
            try:
                async with asyncio.timeout(self._request_timeout):
                    fresh = await self._credential.get_token(BATCH_SCOPE)
            except TimeoutError:
                raise TokenUnavailableError(
                    f"the identity endpoint gave no token within {self._request_timeout:g} s"
                ) from None
            except Exception as exc:  # azure-identity raises several types; all mean "no token now"
                raise TokenUnavailableError(_describe(exc)) from None
            now = self._clock()
            lifetime = max(0.0, fresh.expires_on - now)
            self._token = fresh
            self._refresh_at = now + max(lifetime - _REFRESH_OFFSET, lifetime / 2)
            return fresh
        finally:
            self._refresh = None

    async def close(self) -> None:
        refresh = self._refresh
        if refresh is not None:
            refresh.cancel()
        await self._credential.close()
