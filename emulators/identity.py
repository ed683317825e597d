"""A local managed-identity endpoint (the App Service protocol, ``api-version=2019-08-01``).

azure-identity's ``ManagedIdentityCredential`` uses this protocol when ``IDENTITY_ENDPOINT`` and
``IDENTITY_HEADER`` are set: ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=R[&client_id=C]``
with header ``X-IDENTITY-HEADER: {IDENTITY_HEADER}``. Tokens are unsigned JWTs (``alg: none``) whose
claims look like Entra ID's; the Batch emulator checks their audience and expiry.

Run: ``python -m emulators.identity --port 0 [--secret S] [--client-id GUID ...]``. Control API
under ``/_emulator/``: ``stats``, ``faults``, ``config``, ``reset``, ``health``. A fault applies to the
next ``times`` token requests, and with ``forSeconds`` only to those within that many seconds of the first
one it met (an outage that ends by itself, as a platform's identity endpoint does).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulators import _cli, canary
from emulators._http import Handler, Request, Response, run

log = logging.getLogger("emulators.identity")

TOKEN_PATH = "/msi/token"  # noqa: S105 - a URL path, not a secret
API_VERSION = "2019-08-01"
SYSTEM_ASSIGNED = "system-assigned"  # the byClientId key for requests without client_id
_NAMESPACE = uuid.UUID("6f1c4a2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")  # fixes the ids across runs
TENANT_ID = str(uuid.uuid5(_NAMESPACE, "tenant"))
SYSTEM_CLIENT_ID = str(uuid.uuid5(_NAMESPACE, "system-assigned identity"))
_UNKNOWN_IDENTITY = (
    "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
)


def _b64(obj: dict[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def object_id(client_id: str) -> str:
    """The identity's stable object (principal) id."""
    return str(uuid.uuid5(_NAMESPACE, f"oid:{client_id.lower()}"))


def make_token(resource: str, client_id: str, lifetime: int, now: int) -> str:
    """An unsigned JWT (``header.payload.``) with Entra ID's claims for a managed identity. With
    ``EMULATOR_CANARY`` set, the canary stands in the signature segment (``header.payload.CANARY-...``),
    so every copy of the token can be traced (see ``emulators.canary``)."""
    oid = object_id(client_id)
    payload = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "oid": oid,
        "appid": client_id,
        "tid": TENANT_ID,
        "sub": oid,
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}.{canary.current() or ''}"


def _error(status: int, message: str) -> Response:
    body = {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
    return Response.json(body, status)


_fault_ids = itertools.count(1)


@dataclass
class _Fault:
    id: str
    remaining: int | None
    status: int | None
    drop: bool
    latency: float
    seconds: float | None = None  # forSeconds
    until: float | None = None  # time.monotonic() after which the fault no longer applies (set on first use)

    def applies(self) -> bool:
        return self.remaining != 0 and (self.until is None or time.monotonic() < self.until)

    def take(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1
        if self.seconds is not None and self.until is None:
            self.until = time.monotonic() + self.seconds  # the window starts with its first request

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "remaining": self.remaining,
            "status": self.status,
            "drop": self.drop,
            "latencyMs": self.latency * 1000,
        }


def _parse_fault(spec: Any) -> _Fault:
    if not isinstance(spec, dict) or set(spec) - {"times", "status", "drop", "latencyMs", "forSeconds"}:
        raise ValueError('a fault is {"times", "status", "drop", "latencyMs", "forSeconds"}')
    times = spec.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError("times must be a positive integer or null (unlimited)")
    status = spec.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ValueError("status must be an HTTP status code")
    drop = spec.get("drop", False)
    if not isinstance(drop, bool):
        raise ValueError("drop must be a boolean")
    latency = spec.get("latencyMs", 0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise ValueError("latencyMs must be a non-negative number")
    seconds = spec.get("forSeconds")
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0
    ):
        raise ValueError("forSeconds must be a positive number")
    return _Fault(f"fault-{next(_fault_ids)}", times, status, drop, latency / 1000, seconds)


class IdentityEndpoint:
    """State of one endpoint process, and its ``handle`` coroutine."""

    def __init__(self, secret: str, client_ids: list[str], lifetime: int) -> None:
        self.secret = secret
        self.client_ids = {c.lower(): c for c in client_ids}
        self.default_lifetime = lifetime
        self.lifetime = lifetime
        self.faults: list[_Fault] = []
        self.stats: dict[str, Counter[str]] = {}
        self.requests = 0
        self._canary = canary.current()
        self.reset()
        self._routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("GET", "health"): lambda body: {"status": "ok"},
            ("POST", "reset"): self._reset,
            ("GET", "stats"): self._stats,
            ("POST", "faults"): self._add_fault,
            ("GET", "faults"): lambda body: [fault.to_json() for fault in self.faults],
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "config"): self._config,
            ("POST", "config"): self._configure,
        }

    def reset(self) -> None:
        self.lifetime = self.default_lifetime
        self.faults.clear()
        self.requests = 0
        self.stats = {"byResource": Counter(), "byClientId": Counter(), "byStatus": Counter()}

    async def handle(self, request: Request) -> Response:
        if self._canary is not None:
            part = canary.request_part(self._canary, request.target, request.headers, request.body)
            if part is not None:  # no request to this endpoint ever has a reason to carry a token
                canary.report(f"identity endpoint: {request.method} {request.path}: canary in its {part}")
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        if request.path != TOKEN_PATH:
            return _error(404, f"No route for {request.path}.")
        self.requests += 1
        query = request.query
        self.stats["byResource"][query.get("resource", "")] += 1
        self.stats["byClientId"][query.get("client_id", SYSTEM_ASSIGNED)] += 1
        fault = next((f for f in self.faults if f.applies()), None)
        if fault is not None:
            fault.take()
        if fault is not None and fault.latency > 0:
            await asyncio.sleep(fault.latency)
        if fault is not None and fault.drop:
            response = Response(drop=True)
        elif fault is not None and fault.status is not None:
            response = _error(fault.status, "Injected fault.")
        else:
            response = self._token(request)
        status = "dropped" if response.drop else str(response.status)
        self.stats["byStatus"][status] += 1
        log.info("%s %s -> %s", request.method, request.path, status)
        return response

    def _refusal(self, request: Request) -> Response | None:
        """The error answer for a malformed token request, or None when it is well formed."""
        if request.method != "GET":
            return _error(405, f"Method {request.method} is not allowed.")
        if request.headers.get("x-identity-header") != self.secret:
            return _error(401, "The X-IDENTITY-HEADER header is missing or wrong.")
        if request.query.get("api-version") != API_VERSION:
            return _error(400, f"api-version must be {API_VERSION}.")
        if not request.query.get("resource"):
            return _error(400, "The resource query parameter is required.")
        return None

    def _client_id(self, query: dict[str, str]) -> str | None:
        """The client id of the identity a request selects; None if there is no such identity."""
        if "mi_res_id" in query or "object_id" in query or "principal_id" in query:
            return None  # only client_id selects a user-assigned identity here
        requested = query.get("client_id")
        if requested is None:
            return SYSTEM_CLIENT_ID
        if not self.client_ids:
            return requested
        return self.client_ids.get(requested.lower())

    def _token(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        client_id = self._client_id(request.query)
        if client_id is None:
            return _error(400, _UNKNOWN_IDENTITY)
        resource = request.query["resource"]
        now = int(time.time())
        body = {
            "access_token": make_token(resource, client_id, self.lifetime, now),
            "expires_on": str(now + self.lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }
        return Response.json(body)

    def _control(self, request: Request) -> Response:
        route = self._routes.get((request.method, request.path.removeprefix("/_emulator/")))
        if route is None:
            return Response.json({"error": f"no control route {request.method} {request.path}"}, 404)
        try:
            return Response.json(route(json.loads(request.body) if request.body.strip() else {}))
        except ValueError as error:
            return Response.json({"error": str(error)}, 400)

    def _add_fault(self, body: Any) -> dict[str, str]:
        fault = _parse_fault(body)
        self.faults.append(fault)
        return {"id": fault.id}

    def _clear_faults(self, body: Any) -> dict[str, str]:
        self.faults.clear()
        return {"status": "cleared"}

    def _reset(self, body: Any) -> dict[str, str]:
        self.reset()
        return {"status": "reset"}

    def _stats(self, body: Any) -> dict[str, Any]:
        return {"tokenRequests": self.requests, **self.stats}

    def _configure(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"lifetimeSeconds"}:
            raise ValueError('config is {"lifetimeSeconds": n}')
        lifetime = body.get("lifetimeSeconds", self.lifetime)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ValueError("lifetimeSeconds must be a positive integer")
        self.lifetime = lifetime
        return self._config(body)

    def _config(self, body: Any = None) -> dict[str, Any]:
        return {
            "lifetimeSeconds": self.lifetime,
            "tenantId": TENANT_ID,
            "systemClientId": SYSTEM_CLIENT_ID,
            "clientIds": list(self.client_ids.values()),
        }


def main(argv: list[str] | None = None) -> None:
    parser = _cli.parser("python -m emulators.identity", "A local managed-identity endpoint.")
    parser.add_argument("--secret", help="the X-IDENTITY-HEADER value (default: $IDENTITY_HEADER)")
    parser.add_argument(
        "--client-id",
        action="append",
        default=[],
        help="a user-assigned identity's client id (repeatable); if given, only these are served",
    )
    parser.add_argument("--lifetime-seconds", type=int, default=3600, help="token lifetime")
    args = parser.parse_args(argv)
    secret = args.secret or os.environ.get("IDENTITY_HEADER")
    if not secret:
        parser.error("a secret is required: --secret or the IDENTITY_HEADER environment variable")
    if args.lifetime_seconds < 1:
        parser.error("--lifetime-seconds must be at least 1")
    _cli.setup_logging(args.verbose)
    canary.watch_logging("identity endpoint")
    endpoint = IdentityEndpoint(secret, args.client_id, args.lifetime_seconds)

    def make_handler(base_url: str) -> Handler:
        return endpoint.handle

    banner = "Identity endpoint listening on {url}" + TOKEN_PATH
    with _cli.startup_errors("emulators.identity", debug=args.debug, port=args.port):
        run(make_handler, host=args.host, port=args.port, banner=banner)


if __name__ == "__main__":
    main()
