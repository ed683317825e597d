"""The app's settings (contract section 2), read and validated in one place.

`load_settings()` is called when `function_app` is imported: a missing or malformed setting raises one
`SettingsError` naming it, so the host indexes no function and no message is consumed.
Values that may hold secrets (connection strings) are never repeated in an error.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_INVOCATION_DEADLINE",
    "DEFAULT_QUICK_RETRY_DELAYS",
    "DEFAULT_RETRY_DELAYS",
    "DEFAULT_VERIFY_DELETION_AFTER",
    "DEFAULT_VERIFY_DELETION_TIMEOUT",
    "PLATFORM_SETTING_NAMES",
    "SETTING_NAMES",
    "CredentialKind",
    "ServiceBusConnection",
    "Settings",
    "SettingsError",
    "SuccessSampling",
    "load_settings",
    "validate_endpoint",
]

DEFAULT_API_VERSION = "2025-06-01"
DEFAULT_RETRY_DELAYS: tuple[int, ...] = (60, 300, 900, 3600, 14400)
# Seconds one invocation may take (contract section 2): at most half of host.json's functionTimeout (5 min),
# because the host answers that timeout by restarting the whole worker (every message in flight abandoned).
DEFAULT_INVOCATION_DEADLINE = 120.0
# Waits between the quick attempts inside one invocation (not in the contract: a tuning knob).
DEFAULT_QUICK_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
# Contract section 6: first check that a deleted job is gone after 5 min; report it stuck after 1 h.
DEFAULT_VERIFY_DELETION_AFTER = 300.0
DEFAULT_VERIFY_DELETION_TIMEOUT = 3600.0
_MAX_QUICK_DELAY = 10.0
_QUICK_BUDGET = 30.0

# Batch api-versions look like 2025-06-01 or 2024-07-01.20.0.
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?$")
# Service Bus queue names: letters, digits, periods, hyphens, underscores, slashes; up to 260.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600  # Service Bus schedules at most this far ahead usefully

# Every setting `load_settings` reads, and the only ones it may read (reading another raises at once),
# so the deployment templates and local.settings.sample.json can be checked against it (tests/test_infra.py).
SETTING_NAMES: tuple[str, ...] = (
    "BATCH_ENDPOINT",
    "BATCH_ACCOUNTS",
    "DELETION_QUEUE",
    "DEAD_LETTER_QUEUE",
    "ServiceBusConnection",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "ServiceBusConnection__clientId",
    "AZURE_CLIENT_ID",
    "BATCH_API_VERSION",
    "RETRY_DELAYS",
    "INVOCATION_DEADLINE",
    "QUICK_RETRY_DELAYS",
    "BATCH_CREDENTIAL",
    "VERIFY_DELETION_AFTER",
    "VERIFY_DELETION_TIMEOUT",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)
# Set by Azure, never configured: read only to refuse the developer credential where Azure hosts the app.
PLATFORM_SETTING_NAMES: tuple[str, ...] = ("WEBSITE_INSTANCE_ID",)
_READABLE = frozenset(SETTING_NAMES + PLATFORM_SETTING_NAMES)

CredentialKind = str  # "managed-identity" (default, the production path) or "developer"
_CREDENTIAL_KINDS = ("managed-identity", "developer")


class SettingsError(ValueError):
    """A setting is missing or malformed. `setting` names it; the message never contains its value
    when that value could be a secret."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"setting {setting}: {problem}")


@dataclass(frozen=True)
class ServiceBusConnection:
    """How the app's own Service Bus client connects: a namespace (identity) or a connection string."""

    fully_qualified_namespace: str | None = None
    connection_string: str | None = field(default=None, repr=False)

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class SuccessSampling:
    """Which successful invocations (outcomes logged at INFO) export their spans and record; a failure's
    always are (contract section 7), and the outcome counter counts every message.

    The names and arguments are Azure Monitor's ("Enable sampling in Application Insights with
    OpenTelemetry": `OTEL_TRACES_SAMPLER` = ``microsoft.rate_limited`` with `OTEL_TRACES_SAMPLER_ARG`
    traces per second, or ``microsoft.fixed_percentage`` with a ratio 0-1), plus OpenTelemetry's
    ``always_on``. The difference: the decision is taken when the outcome is known, not when the span
    starts, so only successes are ever sampled (shared/telemetry.py)."""

    kind: str = "microsoft.rate_limited"
    value: float = 5.0  # per second (rate_limited), a ratio (fixed_percentage), unused (always_on)


_SAMPLERS = {"always_on": None, "microsoft.rate_limited": 5.0, "microsoft.fixed_percentage": 1.0}


@dataclass(frozen=True)
class Settings:
    batch_endpoint: str
    batch_accounts: Mapping[str, str]
    deletion_queue: str
    dead_letter_queue: str
    service_bus: ServiceBusConnection
    client_id: str | None
    api_version: str
    retry_delays: tuple[int, ...]
    credential: CredentialKind = "managed-identity"
    quick_retry_delays: tuple[float, ...] = DEFAULT_QUICK_RETRY_DELAYS
    invocation_deadline: float = DEFAULT_INVOCATION_DEADLINE
    verify_deletion_after: float = DEFAULT_VERIFY_DELETION_AFTER  # 0 = never verify
    verify_deletion_timeout: float = DEFAULT_VERIFY_DELETION_TIMEOUT
    # Where telemetry goes (shared/telemetry.py); None = no export. Not a secret: ingestion needs the
    # identity's Entra token (local auth is off), but kept out of repr all the same.
    telemetry_connection_string: str | None = field(default=None, repr=False)
    success_sampling: SuccessSampling = SuccessSampling()

    def endpoint_for(self, account: str | None) -> str | None:
        """The Batch endpoint for a message's `account` (None = the default), or None if unlisted."""
        if account is None:
            return self.batch_endpoint
        return self.batch_accounts.get(account)


class _Declared(Mapping[str, str]):
    """The environment as `load_settings` sees it: only the names declared above."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        if name not in _READABLE:
            # Not a KeyError, which `get` would turn into "not set": an undeclared read is a bug.
            raise RuntimeError(f"load_settings read {name!r}, which SETTING_NAMES does not declare")
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._env if name in _READABLE)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_endpoint(url: str, setting: str) -> str:
    """Return the endpoint without a trailing slash; https only, http only for loopback hosts."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise SettingsError(setting, f"not a valid URL ({exc})") from None
    del port
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise SettingsError(setting, "must be an absolute https:// URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise SettingsError(
            setting, "http:// is accepted only for loopback hosts (local emulators); use https://"
        )
    if parts.username is not None or parts.password is not None:
        raise SettingsError(setting, "must not contain user information")
    if parts.query or parts.fragment:
        raise SettingsError(setting, "must not contain a query or a fragment")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise SettingsError(setting, "must not contain whitespace or control characters")
    return url.rstrip("/")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(name, "is required but not set")
    return value


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _queue(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if not _QUEUE_NAME.fullmatch(value):
        raise SettingsError(name, f"{value!r} is not a valid Service Bus queue name")
    return value


def _accounts(env: Mapping[str, str]) -> dict[str, str]:
    raw = _optional(env, "BATCH_ACCOUNTS")
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise SettingsError("BATCH_ACCOUNTS", 'must be a JSON object {"name": "https://..."}') from None
    if not isinstance(parsed, dict):
        raise SettingsError("BATCH_ACCOUNTS", 'must be a JSON object {"name": "https://..."}')
    accounts: dict[str, str] = {}
    for name, url in parsed.items():
        if not _ACCOUNT_NAME.fullmatch(name):
            raise SettingsError("BATCH_ACCOUNTS", f"account name {name!r} is not valid")
        if not isinstance(url, str):
            raise SettingsError("BATCH_ACCOUNTS", f"the URL of account {name!r} must be a string")
        accounts[name] = validate_endpoint(url, f"BATCH_ACCOUNTS[{name}]")
    return accounts


def _retry_delays(env: Mapping[str, str]) -> tuple[int, ...]:
    raw = _optional(env, "RETRY_DELAYS")
    if raw is None:
        return DEFAULT_RETRY_DELAYS
    delays: list[int] = []
    for item in raw.split(","):
        text = item.strip()
        if not text.isdigit() or not 1 <= int(text) <= _MAX_RETRY_DELAY_SECONDS:
            raise SettingsError(
                "RETRY_DELAYS",
                f"{text!r} is not a whole number of seconds from 1 to {_MAX_RETRY_DELAY_SECONDS}"
                " (expected e.g. 60,300,900)",
            )
        delays.append(int(text))
    return tuple(delays)


def _quick_retry_delays(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = _optional(env, "QUICK_RETRY_DELAYS")
    if raw is None:
        return DEFAULT_QUICK_RETRY_DELAYS
    problem = (
        f"must be up to 10 comma-separated waits of 0-{_MAX_QUICK_DELAY:g} seconds adding up to at most"
        f" {_QUICK_BUDGET:g} (e.g. 0.5,1,2), or 'none'"
    )
    if raw.lower() == "none":
        return ()
    try:
        delays = tuple(float(item) for item in raw.split(","))
    except ValueError:
        raise SettingsError("QUICK_RETRY_DELAYS", problem) from None
    if len(delays) > 10 or sum(delays) > _QUICK_BUDGET or any(not 0 <= d <= _MAX_QUICK_DELAY for d in delays):
        raise SettingsError("QUICK_RETRY_DELAYS", problem)
    return delays


def _invocation_deadline(env: Mapping[str, str]) -> float:
    raw = _optional(env, "INVOCATION_DEADLINE")
    if raw is None:
        return DEFAULT_INVOCATION_DEADLINE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SettingsError(
            "INVOCATION_DEADLINE",
            f"{raw!r} is not a positive number of seconds (e.g. 120; keep it well under host.json's"
            " functionTimeout)",
        )
    return seconds


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, zero_ok: bool, example: str, most: float = math.inf
) -> float:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_ok) or seconds > most:
        kind = "a non-negative" if zero_ok else "a positive"
        raise SettingsError(name, f"{raw!r} is not {kind} number of seconds ({example})")
    return seconds


def _success_sampling(env: Mapping[str, str]) -> SuccessSampling:
    kind = _optional(env, "OTEL_TRACES_SAMPLER")
    raw = _optional(env, "OTEL_TRACES_SAMPLER_ARG")
    if kind is None:
        if raw is not None:
            raise SettingsError(
                "OTEL_TRACES_SAMPLER_ARG", "is set without OTEL_TRACES_SAMPLER (e.g. microsoft.rate_limited)"
            )
        return SuccessSampling()
    if kind not in _SAMPLERS:
        # always_off, traceidratio, parentbased_*: a head sampler could drop a failure, which contract
        # section 7 forbids; the two Azure Monitor samplers and always_on are applied to successes only.
        raise SettingsError(
            "OTEL_TRACES_SAMPLER",
            f"{kind!r} is not one of {', '.join(_SAMPLERS)} (failures are never sampled)",
        )
    default = _SAMPLERS[kind]
    if default is None or raw is None:
        return SuccessSampling(kind, default or 0.0)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    most = 1.0 if kind == "microsoft.fixed_percentage" else math.inf
    if not math.isfinite(value) or not 0 <= value <= most:
        example = "a ratio from 0 to 1, e.g. 0.1" if most == 1.0 else "invocations per second, e.g. 5"
        raise SettingsError("OTEL_TRACES_SAMPLER_ARG", f"{raw!r} is not {example} for {kind}")
    return SuccessSampling(kind, value)


def _service_bus(env: Mapping[str, str]) -> ServiceBusConnection:
    # As in the Functions host: a setting with the connection's own name is a connection string
    # and wins; otherwise the identity-based `__fullyQualifiedNamespace` form is used.
    connection_string = _optional(env, "ServiceBusConnection")
    if connection_string is not None:
        # Never echo the value: it holds a shared access key.
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part.strip())
        endpoint = {k.strip().lower(): v for k, v in fields.items()}.get("endpoint", "")
        if not endpoint.startswith("sb://"):
            raise SettingsError(
                "ServiceBusConnection", "is not a Service Bus connection string (no Endpoint=sb://)"
            )
        return ServiceBusConnection(connection_string=connection_string)
    namespace = _optional(env, "ServiceBusConnection__fullyQualifiedNamespace")
    if namespace is not None:
        if not _NAMESPACE.fullmatch(namespace):
            raise SettingsError(
                "ServiceBusConnection__fullyQualifiedNamespace",
                "must be a host name such as mynamespace.servicebus.windows.net",
            )
        return ServiceBusConnection(fully_qualified_namespace=namespace)
    raise SettingsError(
        "ServiceBusConnection__fullyQualifiedNamespace",
        "is required (or, for a local emulator, a ServiceBusConnection connection string)",
    )


def _client_id(env: Mapping[str, str]) -> str | None:
    for name in ("AZURE_CLIENT_ID", "ServiceBusConnection__clientId"):
        value = _optional(env, name)
        if value is not None:
            if not _GUID.fullmatch(value):
                raise SettingsError(name, "must be a client id (a GUID)")
            return value
    return None


def _credential(env: Mapping[str, str]) -> CredentialKind:
    kind = _optional(env, "BATCH_CREDENTIAL") or "managed-identity"
    if kind not in _CREDENTIAL_KINDS:
        raise SettingsError("BATCH_CREDENTIAL", f"must be one of {', '.join(_CREDENTIAL_KINDS)}")
    # The developer credential is a laptop convenience: refuse it where Azure hosts the app.
    if kind == "developer" and env.get("WEBSITE_INSTANCE_ID"):
        raise SettingsError(
            "BATCH_CREDENTIAL", "'developer' is refused when running in Azure (WEBSITE_INSTANCE_ID)"
        )
    return kind


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every setting of the contract from `env` (default: the process environment)."""
    env = _Declared(os.environ if env is None else env)
    endpoint = validate_endpoint(_required(env, "BATCH_ENDPOINT"), "BATCH_ENDPOINT")
    deletion_queue = _queue(env, "DELETION_QUEUE")
    dead_letter_queue = _queue(env, "DEAD_LETTER_QUEUE")
    if deletion_queue.lower() == dead_letter_queue.lower():
        raise SettingsError("DEAD_LETTER_QUEUE", "must differ from DELETION_QUEUE")
    api_version = _optional(env, "BATCH_API_VERSION") or DEFAULT_API_VERSION
    if not _API_VERSION.fullmatch(api_version):
        raise SettingsError(
            "BATCH_API_VERSION", f"{api_version!r} is not a Batch api-version like 2025-06-01"
        )
    return Settings(
        batch_endpoint=endpoint,
        batch_accounts=_accounts(env),
        deletion_queue=deletion_queue,
        dead_letter_queue=dead_letter_queue,
        service_bus=_service_bus(env),
        client_id=_client_id(env),
        api_version=api_version,
        retry_delays=_retry_delays(env),
        credential=_credential(env),
        quick_retry_delays=_quick_retry_delays(env),
        invocation_deadline=_invocation_deadline(env),
        verify_deletion_after=_seconds(
            env,
            "VERIFY_DELETION_AFTER",
            DEFAULT_VERIFY_DELETION_AFTER,
            zero_ok=True,
            example="e.g. 300; 0 turns verification off; at most 7 days",
            most=_MAX_RETRY_DELAY_SECONDS,
        ),
        verify_deletion_timeout=_seconds(
            env,
            "VERIFY_DELETION_TIMEOUT",
            DEFAULT_VERIFY_DELETION_TIMEOUT,
            zero_ok=False,
            example="e.g. 3600",
        ),
        telemetry_connection_string=_optional(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        success_sampling=_success_sampling(env),
    )
