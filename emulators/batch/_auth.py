"""Bearer-token checks: the audience and lifetime a real Batch account insists on.

Signatures are not checked (the local identity endpoint signs nothing). No token ever appears in an
error text or a log line: only the reason it was refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from emulators.batch._errors import BatchError

AUDIENCES = frozenset({"https://batch.core.windows.net/", "https://batch.core.windows.net"})
_CLOCK_SKEW = 300  # seconds of nbf tolerance, as Entra ID resources allow
_CACHE_LIMIT = 1024
_LOGGED_CLAIMS = ("aud", "appid", "oid", "tid", "iat", "exp")


def _refuse(detail: str) -> BatchError:
    challenge = (
        'Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        'error="invalid_token"'
    )
    return BatchError(
        "AuthenticationFailed",
        {"AuthenticationErrorDetail": detail},
        headers=[("WWW-Authenticate", challenge)],
    )


def _decode(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise _refuse("The access token is not a well-formed JWT.")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        raise _refuse("The access token is not a well-formed JWT.") from None
    if not isinstance(claims, dict):
        raise _refuse("The access token is not a well-formed JWT.")
    return claims


class TokenChecker:
    """Validates ``Authorization`` headers; decoded claims are cached per token (tokens repeat)."""

    def __init__(self) -> None:
        self._claims: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def check(self, authorization: str | None) -> dict[str, Any]:
        """The token's loggable claims; raises ``BatchError`` (401) saying why it is refused."""
        if not authorization:
            raise _refuse("The request has no Authorization header.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refuse("The Authorization header is not of the form 'Bearer <token>'.")
        token = token.strip()
        cached = self._claims.get(token)
        if cached is None:
            claims = _decode(token)
            cached = (claims, {k: claims[k] for k in _LOGGED_CLAIMS if k in claims})
            if len(self._claims) >= _CACHE_LIMIT:
                self._claims.clear()
            self._claims[token] = cached
        claims, loggable = cached
        audience = claims.get("aud")
        if audience not in AUDIENCES:
            raise _refuse(
                f"The access token has audience {json.dumps(audience)}; this resource accepts "
                "only 'https://batch.core.windows.net/'."
            )
        expires, not_before, now = claims.get("exp"), claims.get("nbf"), time.time()
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise _refuse("The access token has no expiry (exp) claim.")
        if expires <= now:
            raise _refuse("Lifetime validation failed. The access token is expired.")
        if isinstance(not_before, int | float) and not_before > now + _CLOCK_SKEW:
            raise _refuse("Lifetime validation failed. The access token is not yet valid.")
        return loggable
