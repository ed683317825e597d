"""Claims-based security as Service Bus does it for SAS keys: a client puts a token on ``$cbs``; a
link to an entity needs an unexpired token, put on the same connection, whose resource covers it.

A SAS token is ``SharedAccessSignature sr=<url-encoded resource URI>&sig=<signature>&se=<expiry>&skn=<key
name>``; the signature is the base64 HMAC-SHA256, with the key, of the url-encoded resource URI, a
newline and the expiry (Service Bus docs, "Service Bus access control with Shared Access Signatures").
"A SAS token is valid for all resources under the <resourceURI>" (same page). Only the resource's path
is compared: the emulator answers on whatever host name a client used to reach it.

| client does | Service Bus answers | SDK raises |
|---|---|---|
| put-token, unknown key name or wrong key | ``status-code`` 401 | ServiceBusAuthenticationError |
| put-token, expired token | 401, ``ExpiredToken: ...`` | ServiceBusAuthenticationError |
| attach to an entity, no token covers it | ``amqp:unauthorized-access`` | ServiceBusAuthorizationError |

(The 401 replies and the ``Unauthorized access. 'Send' claim(s) are required to perform this operation``
refusal are what Azure answers in the Go SDK's live tests: azure-sdk-for-go,
sdk/messaging/azservicebus/receiver_test.go, ``TestReceiverUnauthorizedCreds``.)

Every key here carries all rights (Manage, Send, Listen), like a namespace's RootManageSharedAccessKey.
Not checked: a token expiring under an open link (Azure then detaches it); Microsoft Entra ID tokens
(Microsoft's own Service Bus emulator does not take them either).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit

__all__ = [
    "WELL_KNOWN_KEY",
    "WELL_KNOWN_KEY_NAME",
    "Grants",
    "Keys",
    "TokenRefused",
    "parse_key_spec",
    "resource_path",
]

# The key of Microsoft's Service Bus development emulator, in every connection string its docs show
# ("Test locally by using the Azure Service Bus emulator"): this emulator takes it too.
WELL_KNOWN_KEY_NAME = "RootManageSharedAccessKey"
WELL_KNOWN_KEY = "SAS_KEY_VALUE"
_PREFIX = "SharedAccessSignature "
_INVALID_SIGNATURE = "InvalidSignature: The token has an invalid signature."


class TokenRefused(Exception):
    """A put-token the emulator refuses; ``str()`` is the reply's status-description (no secret)."""


def resource_path(uri: str) -> str:
    """``sb://host:5672/Orders/`` -> ``orders``: the part of a resource URI that names entities."""
    return urlsplit(uri).path.strip("/").lower() if "://" in uri else uri.strip("/").lower()


def parse_key_spec(text: str) -> tuple[str, str]:
    """``NAME=KEY`` (the key may itself contain ``=``, as base64 keys do) -> (name, key)."""
    name, equals, key = text.partition("=")
    if not equals or not name.strip() or not key:
        raise ValueError("expected NAME=KEY, e.g. RootManageSharedAccessKey=<base64 key>")
    return name.strip(), key


class Keys:
    """The shared access keys the emulator accepts, by key name (a name may have a primary and a
    secondary key, as Service Bus authorization rules do)."""

    def __init__(self, declared: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: dict[str, list[bytes]] = {WELL_KNOWN_KEY_NAME: [WELL_KNOWN_KEY.encode()]}
        for name, key in declared:
            self._keys.setdefault(name, []).append(key.encode())

    def check(self, token: str, now: float) -> tuple[str, float]:
        """The resource path a valid token covers and its expiry (epoch seconds); ``TokenRefused`` else."""
        if not token.startswith(_PREFIX):
            raise TokenRefused("InvalidToken: the emulator takes SharedAccessSignature tokens only.")
        fields = dict(part.partition("=")[::2] for part in token[len(_PREFIX) :].split("&"))
        encoded_resource, signature = fields.get("sr", ""), unquote_plus(fields.get("sig", ""))
        expiry_text, key_name = fields.get("se", ""), unquote_plus(fields.get("skn", ""))
        if not (encoded_resource and signature and expiry_text.isdigit() and key_name):
            raise TokenRefused("InvalidToken: the token lacks sr, sig, se or skn.")
        # The signature covers the resource URI exactly as encoded in the token.
        signed = f"{encoded_resource}\n{expiry_text}".encode()
        if not any(_matches(key, signed, signature) for key in self._keys.get(key_name, ())):
            raise TokenRefused(_INVALID_SIGNATURE)
        expiry = int(expiry_text)
        if expiry <= now:
            raise TokenRefused(f"ExpiredToken: The token is expired. Expiration time: '{expiry}'.")
        return resource_path(unquote_plus(encoded_resource)), float(expiry)


def _matches(key: bytes, signed: bytes, signature: str) -> bool:
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature)


@dataclass
class Grants:
    """The tokens one connection has put: resource path -> expiry (epoch seconds)."""

    resources: dict[str, float] = field(default_factory=dict)

    def add(self, resource: str, expiry: float) -> None:
        self.resources[resource] = max(expiry, self.resources.get(resource, 0.0))

    def allow(self, entity_path: str, now: float) -> bool:
        """Whether an unexpired token covers ``entity_path`` (``orders``, ``orders/$deadletterqueue``)."""
        path = entity_path.strip("/").lower()
        return any(
            expiry > now and (not resource or path == resource or path.startswith(resource + "/"))
            for resource, expiry in self.resources.items()
        )
