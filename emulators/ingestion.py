"""A local Application Insights ingestion endpoint ("Breeze"): ``POST /v2.1/track``, over HTTPS.

What the app's Azure Monitor exporters (azure-monitor-opentelemetry-exporter) upload, the way the
deployed app uploads it: with the managed identity's Entra token, because the Application Insights
resource has local authentication off. Checked like Azure:

- HTTPS only. azure-core's ``BearerTokenCredentialPolicy`` refuses to send a bearer token over plain
  HTTP (``_enforce_https``), so the exporter never uploads to an ``http://`` endpoint: it fails before
  sending and keeps the batch in its offline storage. The stand-in therefore serves TLS with a
  self-signed certificate it writes to ``--tls-dir`` (``cert.pem``); a client trusts it through
  ``REQUESTS_CA_BUNDLE`` (the exporter sends with azure-core's requests transport, which honours it).
- ``Authorization: Bearer <token>`` whose audience is Azure Monitor's (``https://monitor.azure.com/``,
  the scope the exporter asks for: ``_constants._DEFAULT_AAD_SCOPE``) and which has not expired;
  else 401, as a resource with local authentication off answers (docs: "Microsoft Entra authentication
  for Application Insights", section "Disable local authentication").
  As in the Batch emulator, the token's signature is not checked (the local identity endpoint signs
  nothing), and no token is ever kept, logged or answered: only the claims that say whose it was.
- The body: a JSON array of envelopes, or newline-delimited JSON (``x-json-stream``), gzip-compressed
  when ``Content-Encoding: gzip`` (the endpoint protocol, ApplicationInsights-Home
  ``EndpointSpecs/ENDPOINT-PROTOCOL.md``). The exporter sends a plain JSON array
  (``_generated/exporter/_operations/_operations.py`` ``track``). An envelope without ``name``,
  ``time``, ``iKey`` or ``data.baseType`` is refused on its own (206, its index and 400 in ``errors``).
- The answer: 200 ``{"itemsReceived": n, "itemsAccepted": n, "errors": []}`` (the ``TrackResponse``
  the exporter deserialises).

Not done: sampling, throttling (429/439), quotas, redirects to a regional endpoint, the iKey's match with
a resource, Live Metrics (QuickPulse), the statsbeat endpoints. Tests read what arrived through the
control API under ``/_emulator/``: ``envelopes`` (``?since=n``: after the n-th), ``uploads`` (one entry
per POST: status, item count, the token's audience and client id), ``stats``, ``reset``, ``health``.

Run: ``python -m emulators.ingestion --port 0 --tls-dir DIR``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import gzip
import ipaddress
import json
import logging
import ssl
import time
import zlib
from collections import Counter, deque
from pathlib import Path
from typing import Any

from emulators import _cli, canary
from emulators._http import Handler, Request, Response, run

log = logging.getLogger("emulators.ingestion")

TRACK_PATHS = frozenset({"/v2.1/track", "/v2/track"})
AUDIENCES = frozenset({"https://monitor.azure.com/", "https://monitor.azure.com"})
CERTIFICATE = "cert.pem"
_KEY = "key.pem"
_KEPT = 20_000  # envelopes kept for the control API (the newest); counts cover all of them
_REQUIRED = ("name", "time", "iKey")


def write_certificate(directory: Path) -> Path:
    """A fresh self-signed certificate for 127.0.0.1 and localhost, and its key, in ``directory``;
    returns the certificate's path, what a client trusts."""
    from cryptography import x509  # noqa: PLC0415 - only the stand-in needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    certificate, key_file = directory / CERTIFICATE, directory / _KEY
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local ingestion stand-in")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return certificate


def server_context(directory: Path) -> ssl.SSLContext:
    certificate = write_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, directory / _KEY)
    return context


def _track_response(received: int, errors: list[dict[str, Any]], status: int) -> Response:
    body = {"itemsReceived": received, "itemsAccepted": received - len(errors), "errors": errors}
    return Response.json(body, status)


def _refused(received: int, message: str) -> Response:
    """401 for every item: what a resource with local authentication off answers an upload without a
    valid Entra token."""
    errors = [{"index": i, "statusCode": 401, "message": message} for i in range(received)]
    return _track_response(received, errors, 401)


def _decode(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _claims(authorization: str | None) -> tuple[dict[str, Any] | None, str]:
    """The token's claims, or None and why it is refused (never the token itself)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, "No 'Authorization: Bearer <token>': this resource accepts only Entra ID tokens."
    claims = _decode(token.strip())
    if claims is None:
        return None, "The access token is not a well-formed JWT."
    if claims.get("aud") not in AUDIENCES:
        return None, (
            f"The access token has audience {json.dumps(claims.get('aud'))}; "
            "Application Insights accepts only 'https://monitor.azure.com/'."
        )
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or expires <= time.time():
        return None, "The access token is expired or has no expiry (exp) claim."
    return claims, ""


def _envelopes(request: Request) -> list[Any]:
    """The uploaded items: a JSON array or one JSON value a line, gzip-compressed or not; raises
    ValueError when the body is neither."""
    body = request.body
    if "gzip" in request.headers.get("content-encoding", "").lower():
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"the body is not valid gzip: {error}") from None
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    stripped = text.lstrip()
    if stripped.startswith("["):
        items = json.loads(stripped)
        if not isinstance(items, list):
            raise ValueError("the body is not a JSON array")
        return items
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _invalid(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "An envelope must be a JSON object."
    missing = [field for field in _REQUIRED if not item.get(field)]
    data = item.get("data")
    if not isinstance(data, dict) or not data.get("baseType"):
        missing.append("data.baseType")
    return f"Field(s) {', '.join(missing)} missing or empty." if missing else None


class Ingestion:
    """State of one stand-in process, and its ``handle`` coroutine."""

    def __init__(self, kept: int = _KEPT) -> None:
        self._kept = kept
        self.envelopes: deque[tuple[int, dict[str, Any]]] = deque(maxlen=kept)
        self.uploads: deque[dict[str, Any]] = deque(maxlen=kept)
        self.accepted = 0
        self.by_status: Counter[str] = Counter()
        self._canary = canary.current()

    def reset(self) -> None:
        self.envelopes.clear()
        self.uploads.clear()
        self.accepted = 0
        self.by_status.clear()

    async def handle(self, request: Request) -> Response:
        if self._canary is not None:
            # The token belongs in Authorization; in an envelope it would be a secret in telemetry.
            part = canary.request_part(
                self._canary, request.target, request.headers, request.body, skip="authorization"
            )
            if part is not None:
                canary.report(f"ingestion stand-in: {request.method} {request.path}: canary in its {part}")
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        # The exporter joins the connection string's IngestionEndpoint, which Azure writes with a trailing
        # slash, and "/v2.1/track": the path it sends starts with "//" (azure-core ``format_url``).
        if "/" + request.path.lstrip("/") not in TRACK_PATHS:
            return Response.json({"error": f"No route for {request.path}."}, 404)
        if request.method != "POST":
            return Response.json({"error": f"Method {request.method} is not allowed."}, 405)
        response, upload = self._track(request)
        upload["status"] = response.status
        self.uploads.append(upload)
        self.by_status[str(response.status)] += 1
        log.info("%s %s -> %s (%s items)", request.method, request.path, response.status, upload["items"])
        return response

    def _track(self, request: Request) -> tuple[Response, dict[str, Any]]:
        upload: dict[str, Any] = {
            "contentType": request.headers.get("content-type"),
            "contentEncoding": request.headers.get("content-encoding"),
            "items": 0,
        }
        try:
            items = _envelopes(request)
        except ValueError as error:
            return _track_response(0, [{"index": 0, "statusCode": 400, "message": str(error)}], 400), upload
        upload["items"] = len(items)
        claims, why = _claims(request.headers.get("authorization"))
        if claims is None:
            upload["refused"] = why
            return _refused(len(items), why), upload
        upload["audience"] = claims.get("aud")
        upload["clientId"] = claims.get("appid")
        errors = []
        for index, item in enumerate(items):
            problem = _invalid(item)
            if problem is not None:
                errors.append({"index": index, "statusCode": 400, "message": problem})
                continue
            self.accepted += 1
            self.envelopes.append((self.accepted, item))
        if self._canary is not None and upload["contentEncoding"] and self._canary in json.dumps(items):
            # (a plain body was checked as it came in: handle())
            canary.report("ingestion stand-in: an uploaded envelope holds the canary")
        if not errors:
            return _track_response(len(items), [], 200), upload
        status = 206 if len(errors) < len(items) else 400
        return _track_response(len(items), errors, status), upload

    def _control(self, request: Request) -> Response:
        name = request.path.removeprefix("/_emulator/")
        if (request.method, name) == ("POST", "reset"):
            self.reset()
            return Response.json({"status": "reset"})
        if request.method != "GET" or name not in ("health", "envelopes", "uploads", "stats"):
            return Response.json({"error": f"no control route {request.method} {request.path}"}, 404)
        if name == "envelopes":
            since = request.query.get("since", "0")
            if not since.isdigit():
                return Response.json({"error": "since must be a non-negative integer"}, 400)
            return Response.json([item for n, item in self.envelopes if n > int(since)])
        if name == "uploads":
            return Response.json(list(self.uploads))
        stats = {"uploads": self.by_status.total(), "accepted": self.accepted, "byStatus": self.by_status}
        return Response.json(stats if name == "stats" else {"status": "ok"})


def main(argv: list[str] | None = None) -> None:
    parser = _cli.parser(
        "python -m emulators.ingestion", "A local Application Insights ingestion endpoint (HTTPS)."
    )
    parser.add_argument(
        "--tls-dir",
        required=True,
        type=Path,
        help=f"folder for the self-signed certificate ({CERTIFICATE}: what a client trusts) and its key",
    )
    parser.add_argument(
        "--keep", type=int, default=_KEPT, help=f"envelopes kept for the control API (default {_KEPT:,})"
    )
    args = parser.parse_args(argv)
    if args.keep < 0:
        parser.error("--keep must be >= 0")
    _cli.setup_logging(args.verbose)
    canary.watch_logging("ingestion stand-in")
    ingestion = Ingestion(args.keep)

    def make_handler(base_url: str) -> Handler:
        return ingestion.handle

    with _cli.startup_errors("emulators.ingestion", debug=args.debug, port=args.port):
        tls = server_context(args.tls_dir)
        run(
            make_handler,
            host=args.host,
            port=args.port,
            banner="Ingestion endpoint listening on {url}",
            tls=tls,
        )


if __name__ == "__main__":
    main()
