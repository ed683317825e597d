"""Settings: every contract setting read in one place; a bad one fails once, by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import (
    DEFAULT_API_VERSION,
    DEFAULT_INVOCATION_DEADLINE,
    DEFAULT_RETRY_DELAYS,
    SettingsError,
    SuccessSampling,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "BATCH_ENDPOINT": "https://acct.westeurope.batch.azure.com",
    "DELETION_QUEUE": "deletions",
    "DEAD_LETTER_QUEUE": "deletions-failed",
    "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
}
SECRET_KEY = "c2VjcmV0LWtleS1uZXZlci1sb2dnZWQ="
CONNECTION_STRING = (
    f"Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=Root;SharedAccessKey={SECRET_KEY};"
    "UseDevelopmentEmulator=true;"
)


def env(**changes: str | None) -> dict[str, str]:
    result = dict(BASE)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def error_for(values: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load_settings(values)
    return info.value


def test_minimal_settings_get_documented_defaults() -> None:
    """Only the required settings given: api-version, retry schedule and identity take defaults."""
    settings = load_settings(env())
    assert settings.batch_endpoint == "https://acct.westeurope.batch.azure.com"
    assert settings.api_version == DEFAULT_API_VERSION == "2025-06-01"
    assert settings.retry_delays == DEFAULT_RETRY_DELAYS == (60, 300, 900, 3600, 14400)
    assert settings.invocation_deadline == DEFAULT_INVOCATION_DEADLINE == 120
    assert settings.verify_deletion_after == 300
    assert settings.verify_deletion_timeout == 3600
    assert settings.batch_accounts == {}
    assert settings.client_id is None
    assert settings.credential == "managed-identity"
    assert settings.service_bus.uses_identity
    assert settings.service_bus.fully_qualified_namespace == "ns.servicebus.windows.net"


@pytest.mark.parametrize("name", ["BATCH_ENDPOINT", "DELETION_QUEUE", "DEAD_LETTER_QUEUE"])
def test_missing_required_setting_is_named(name: str) -> None:
    """A missing required setting fails with an error that names it."""
    error = error_for(env(**{name: None}))
    assert error.setting == name
    assert name in str(error)


def test_missing_service_bus_connection_is_named() -> None:
    """Neither Service Bus form given: the error names the identity-based setting."""
    error = error_for(env(ServiceBusConnection__fullyQualifiedNamespace=None))
    assert error.setting == "ServiceBusConnection__fullyQualifiedNamespace"


@pytest.mark.parametrize(
    "url",
    [
        "http://acct.westeurope.batch.azure.com",
        "http://10.0.0.4:8080",
        "ftp://acct.batch.azure.com",
        "acct.batch.azure.com",
        "https://user:pw@acct.batch.azure.com",
        "https://acct.batch.azure.com/?x=1",
        "https://acct.batch.azure.com/#f",
        "https://acct.batch.azure.com:99999",
        "https://",
    ],
)
def test_unsafe_or_malformed_endpoint_is_refused(url: str) -> None:
    """Only https:// endpoints (or http:// on loopback) without credentials, query or fragment."""
    assert error_for(env(BATCH_ENDPOINT=url)).setting == "BATCH_ENDPOINT"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8470", "http://localhost:1", "http://[::1]:9/", "http://127.8.9.10"]
)
def test_http_is_accepted_for_loopback(url: str) -> None:
    """Local emulators on loopback may use plain http://; a trailing slash is dropped."""
    assert load_settings(env(BATCH_ENDPOINT=url)).batch_endpoint == url.rstrip("/")


def test_accounts_are_an_allowlist_of_endpoints() -> None:
    """BATCH_ACCOUNTS maps names to endpoints; unknown names have no endpoint."""
    accounts = {"east": "https://east.eastus.batch.azure.com/", "local": "http://127.0.0.1:9"}
    settings = load_settings(env(BATCH_ACCOUNTS=json.dumps(accounts)))
    assert settings.endpoint_for(None) == BASE["BATCH_ENDPOINT"]
    assert settings.endpoint_for("east") == "https://east.eastus.batch.azure.com"
    assert settings.endpoint_for("local") == "http://127.0.0.1:9"
    assert settings.endpoint_for("west") is None


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        ('{"east": 5}', "must be a string"),
        ('{"bad name!": "https://x.batch.azure.com"}', "not valid"),
        ('{"east": "http://evil.example.com"}', "loopback"),
    ],
)
def test_malformed_accounts_are_refused(raw: str, fragment: str) -> None:
    """A malformed or unsafe BATCH_ACCOUNTS fails with a precise reason."""
    error = error_for(env(BATCH_ACCOUNTS=raw))
    assert error.setting.startswith("BATCH_ACCOUNTS")
    assert fragment in str(error)


@pytest.mark.parametrize("raw", ["60,abc", "0", "-5", "60,,300", "1.5", "99999999"])
def test_malformed_retry_delays_are_refused(raw: str) -> None:
    """RETRY_DELAYS must be whole positive seconds, comma-separated."""
    assert error_for(env(RETRY_DELAYS=raw)).setting == "RETRY_DELAYS"


def _timespan_seconds(text: str) -> float:
    """host.json's functionTimeout, hh:mm:ss (the form it uses)."""
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_default_deadline_is_at_most_half_of_the_host_function_timeout() -> None:
    """The host restarts the whole worker on functionTimeout (every message in flight abandoned), so the
    function's own deadline must end well before it: the default is at most half of host.json's."""
    host = json.loads((ROOT / "host.json").read_text())
    function_timeout = _timespan_seconds(host["functionTimeout"])
    assert function_timeout == 300
    assert function_timeout / 2 >= DEFAULT_INVOCATION_DEADLINE


@pytest.mark.parametrize(("raw", "seconds"), [("120", 120.0), (" 2.5 ", 2.5), ("0.2", 0.2), ("3600", 3600.0)])
def test_invocation_deadline_takes_any_positive_number(raw: str, seconds: float) -> None:
    """INVOCATION_DEADLINE is any positive number of seconds (small values are legitimate in tests)."""
    assert load_settings(env(INVOCATION_DEADLINE=raw)).invocation_deadline == seconds


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "nan", "inf", "1e400", "2m"])
def test_malformed_invocation_deadline_is_refused(raw: str) -> None:
    """Zero, negative, not a number, infinite: refused at import, naming INVOCATION_DEADLINE."""
    error = error_for(env(INVOCATION_DEADLINE=raw))
    assert error.setting == "INVOCATION_DEADLINE"
    assert "positive number of seconds" in str(error)


@pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("1", 1.0), (" 0.5 ", 0.5), ("600", 600.0)])
def test_verify_deletion_after_takes_zero_or_more(raw: str, seconds: float) -> None:
    """VERIFY_DELETION_AFTER is any non-negative number of seconds; 0 turns verification off."""
    assert load_settings(env(VERIFY_DELETION_AFTER=raw)).verify_deletion_after == seconds


@pytest.mark.parametrize(
    ("name", "raw"),
    [("VERIFY_DELETION_AFTER", r) for r in ("-1", "abc", "nan", "inf", "604801")]
    + [("VERIFY_DELETION_TIMEOUT", r) for r in ("0", "-5", "x", "inf")],
)
def test_malformed_verification_settings_are_refused(name: str, raw: str) -> None:
    """A negative, non-numeric or infinite verification setting (or a zero timeout) is refused by name."""
    error = error_for(env(**{name: raw}))
    assert error.setting == name
    assert "number of seconds" in str(error)


@pytest.mark.parametrize(
    ("sampler", "arg", "expected"),
    [
        (None, None, SuccessSampling("microsoft.rate_limited", 5.0)),
        ("microsoft.rate_limited", None, SuccessSampling("microsoft.rate_limited", 5.0)),
        ("microsoft.rate_limited", "0.5", SuccessSampling("microsoft.rate_limited", 0.5)),
        ("microsoft.rate_limited", "0", SuccessSampling("microsoft.rate_limited", 0.0)),
        ("microsoft.fixed_percentage", " 0.1 ", SuccessSampling("microsoft.fixed_percentage", 0.1)),
        ("microsoft.fixed_percentage", None, SuccessSampling("microsoft.fixed_percentage", 1.0)),
        ("always_on", None, SuccessSampling("always_on", 0.0)),
        ("always_on", "", SuccessSampling("always_on", 0.0)),
    ],
)
def test_success_sampling_takes_azure_monitors_sampler_names(
    sampler: str | None, arg: str | None, expected: SuccessSampling
) -> None:
    """OTEL_TRACES_SAMPLER / _ARG as Azure Monitor's distro reads them; by default about 5 successes a
    second are exported."""
    assert (
        load_settings(env(OTEL_TRACES_SAMPLER=sampler, OTEL_TRACES_SAMPLER_ARG=arg)).success_sampling
        == expected
    )


@pytest.mark.parametrize(
    ("sampler", "arg", "name", "fragment"),
    [
        ("always_off", None, "OTEL_TRACES_SAMPLER", "failures are never sampled"),
        ("parentbased_traceidratio", "0.1", "OTEL_TRACES_SAMPLER", "not one of"),
        ("microsoft.fixed_percentage", "1.5", "OTEL_TRACES_SAMPLER_ARG", "ratio from 0 to 1"),
        ("microsoft.fixed_percentage", "-0.1", "OTEL_TRACES_SAMPLER_ARG", "ratio from 0 to 1"),
        ("microsoft.rate_limited", "fast", "OTEL_TRACES_SAMPLER_ARG", "per second"),
        ("microsoft.rate_limited", "inf", "OTEL_TRACES_SAMPLER_ARG", "per second"),
        (None, "5", "OTEL_TRACES_SAMPLER_ARG", "without OTEL_TRACES_SAMPLER"),
    ],
)
def test_malformed_sampling_is_refused_by_name(
    sampler: str | None, arg: str | None, name: str, fragment: str
) -> None:
    """A sampler that could drop a failure, or an argument out of range, fails the start by name."""
    error = error_for(env(OTEL_TRACES_SAMPLER=sampler, OTEL_TRACES_SAMPLER_ARG=arg))
    assert error.setting == name
    assert fragment in str(error)


def test_retry_delays_are_parsed() -> None:
    """A custom schedule is read in order; spaces are tolerated."""
    assert load_settings(env(RETRY_DELAYS=" 1, 2 ,3")).retry_delays == (1, 2, 3)


@pytest.mark.parametrize("version", ["2025-06-01", "2024-07-01.20.0"])
def test_api_version_forms(version: str) -> None:
    """Both Batch api-version forms are accepted."""
    assert load_settings(env(BATCH_API_VERSION=version)).api_version == version


def test_malformed_api_version_is_refused() -> None:
    """An api-version that is not Batch's form fails at load time, not at the first delete."""
    assert error_for(env(BATCH_API_VERSION="latest")).setting == "BATCH_API_VERSION"


def test_queue_names_are_checked_and_must_differ() -> None:
    """A queue name with a space, or both queues the same, is refused."""
    assert error_for(env(DELETION_QUEUE="my queue")).setting == "DELETION_QUEUE"
    assert error_for(env(DEAD_LETTER_QUEUE="Deletions")).setting == "DEAD_LETTER_QUEUE"


def test_connection_string_wins_and_is_never_echoed() -> None:
    """The connection-string form takes precedence, and a bad one is reported without its key."""
    settings = load_settings(env(ServiceBusConnection=CONNECTION_STRING))
    assert not settings.service_bus.uses_identity
    assert SECRET_KEY not in repr(settings)
    bad = "Endpoint=https://x;SharedAccessKey=" + SECRET_KEY
    error = error_for(env(ServiceBusConnection=bad))
    assert error.setting == "ServiceBusConnection"
    assert SECRET_KEY not in str(error)


def test_client_id_falls_back_to_the_trigger_setting() -> None:
    """AZURE_CLIENT_ID wins; otherwise ServiceBusConnection__clientId names the identity."""
    a, b = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
    assert load_settings(env(ServiceBusConnection__clientId=b)).client_id == b
    assert load_settings(env(AZURE_CLIENT_ID=a, ServiceBusConnection__clientId=b)).client_id == a
    assert error_for(env(AZURE_CLIENT_ID="me")).setting == "AZURE_CLIENT_ID"


def test_developer_credential_is_refused_in_azure() -> None:
    """BATCH_CREDENTIAL=developer works locally but not where Azure hosts the app."""
    assert load_settings(env(BATCH_CREDENTIAL="developer")).credential == "developer"
    error = error_for(env(BATCH_CREDENTIAL="developer", WEBSITE_INSTANCE_ID="abc"))
    assert error.setting == "BATCH_CREDENTIAL"
    assert error_for(env(BATCH_CREDENTIAL="cli")).setting == "BATCH_CREDENTIAL"


def test_sample_local_settings_load() -> None:
    """local.settings.sample.json holds a complete, valid configuration for the emulators."""
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = load_settings(values)
    assert settings.batch_endpoint.startswith("http://127.0.0.1")
    assert not settings.service_bus.uses_identity
