"""Where the tool connects and which queues it uses.

Each value comes from its option, else the environment, else the `Values` of local.settings.json (else
local.settings.sample.json) in the current directory, as the app's local host reads them. The two
connection settings travel together: when the environment sets either, neither is taken from a file, so
a sample's emulator connection string never overrides an operator's namespace setting.

A connection string is never printed: messages name the namespace host and where the value came from.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.servicebus import ServiceBusClient

from deleter_cli._errors import CliError

__all__ = [
    "CONNECTION_STRING",
    "DEAD_LETTER_QUEUE",
    "DELETION_QUEUE",
    "NAMESPACE",
    "Connection",
    "Queue",
    "Setting",
    "Sources",
    "open_client",
]

CONNECTION_STRING = "ServiceBusConnection"
NAMESPACE = "ServiceBusConnection__fullyQualifiedNamespace"
DELETION_QUEUE = "DELETION_QUEUE"
DEAD_LETTER_QUEUE = "DEAD_LETTER_QUEUE"
LOCAL_SETTINGS_FILES = ("local.settings.json", "local.settings.sample.json")
_CONNECTION_SETTINGS = (CONNECTION_STRING, NAMESPACE)


@dataclass(frozen=True)
class Setting:
    value: str
    source: (
        str  # e.g. "--queue", "DELETION_QUEUE in the environment", "DELETION_QUEUE in local.settings.json"
    )


class Sources:
    """The environment, then the local settings file: `get(name)` says which gave the value."""

    def __init__(self, env: Mapping[str, str], file_values: Mapping[str, str], file: Path | None) -> None:
        self._env = env
        self._file_values = file_values
        self._file = file

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, directory: Path | None = None) -> Sources:
        env = os.environ if env is None else env
        directory = Path.cwd() if directory is None else directory
        for name in LOCAL_SETTINGS_FILES:
            path = directory / name
            if path.is_file():
                return cls(env, _read_values(path), path)
        return cls(env, {}, None)

    def get(self, name: str) -> Setting | None:
        value = self._env.get(name, "").strip()
        if value:
            return Setting(value, f"{name} in the environment")
        if name in _CONNECTION_SETTINGS and any(self._env.get(n, "").strip() for n in _CONNECTION_SETTINGS):
            return None
        value = self._file_values.get(name, "").strip()
        if value and self._file is not None:
            return Setting(value, f"{name} in {self._file.name}")
        return None


def _read_values(path: Path) -> dict[str, str]:
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, ValueError, AttributeError) as exc:
        reason = type(exc).__name__ if isinstance(exc, AttributeError) else str(exc).splitlines()[0]
        raise CliError(f"{path} is not a readable local settings file ({reason})") from None
    if not isinstance(values, dict):
        raise CliError(f"{path}: 'Values' must be a JSON object")
    return {str(k): str(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Connection:
    """A namespace reached with a connection string, or with the operator's own Azure credential."""

    namespace: str  # host[:port], what messages may show
    source: str
    connection_string: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, connection_string: str | None, namespace: str | None, sources: Sources) -> Connection:
        if connection_string and namespace:
            raise CliError("give --connection-string or --namespace, not both")
        if connection_string:
            return cls.from_connection_string(connection_string, "--connection-string")
        if namespace:
            return cls.from_namespace(namespace, "--namespace")
        # As in the Functions host, a connection string setting wins over the namespace setting.
        found = sources.get(CONNECTION_STRING)
        if found is not None:
            return cls.from_connection_string(found.value, found.source)
        found = sources.get(NAMESPACE)
        if found is not None:
            return cls.from_namespace(found.value, found.source)
        raise CliError(
            "no Service Bus connection: pass --namespace (with your Azure sign-in) or --connection-string,"
            f" or set {NAMESPACE} or {CONNECTION_STRING} (environment or local.settings.json)"
        )

    @classmethod
    def from_connection_string(cls, value: str, source: str) -> Connection:
        fields = {}
        for part in value.split(";"):
            key, sep, item = part.partition("=")
            if sep:
                fields[key.strip().lower()] = item.strip()
        endpoint = fields.get("endpoint", "")
        try:
            host = urlsplit(endpoint).netloc if endpoint.lower().startswith("sb://") else ""
        except ValueError:
            host = ""
        if not host:
            # Never echo the value: it holds a shared access key.
            raise CliError(f"{source} is not a Service Bus connection string (no Endpoint=sb://...)")
        return cls(namespace=host, source=source, connection_string=value)

    @classmethod
    def from_namespace(cls, value: str, source: str) -> Connection:
        host = value.strip()
        if "://" in host:
            host = urlsplit(host).netloc
        host = host.rstrip("/")
        if not host or any(c.isspace() or c in "/;@" for c in host):
            raise CliError(f"{source} must be a host name such as mynamespace.servicebus.windows.net")
        return cls(namespace=host, source=source)

    def redact(self, text: str) -> str:
        """`text` without the connection string or any of its keys."""
        if self.connection_string is None:
            return text
        text = text.replace(self.connection_string, "<connection string>")
        for part in self.connection_string.split(";"):
            key, sep, secret = part.partition("=")
            if sep and key.strip().lower() in ("sharedaccesskey", "sharedaccesssignature") and secret:
                text = text.replace(secret.strip(), "***")
        return text


# An operator waits at the terminal: one quick retry instead of the SDK's three with backoff (~12 s
# before an unreachable namespace is reported). Keywords of azure.servicebus.ServiceBusClient.
_RETRIES: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.5, "retry_backoff_max": 2}


@contextmanager
def open_client(connection: Connection) -> Iterator[ServiceBusClient]:
    """A sync client for `connection`, closed (with its credential) on the way out. Says first (on
    stderr) where it connects: an unreachable namespace takes seconds to fail, not silence."""
    sys.stderr.write(f"connecting to Service Bus at {connection.namespace} (from {connection.source})\n")
    sys.stderr.flush()
    if connection.connection_string is not None:
        with ServiceBusClient.from_connection_string(connection.connection_string, **_RETRIES) as client:
            yield client
        return
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for identity connections

    with (
        DefaultAzureCredential() as credential,
        ServiceBusClient(connection.namespace, credential, **_RETRIES) as client,
    ):
        yield client


@dataclass(frozen=True)
class Queue:
    name: str
    source: str

    @classmethod
    def resolve(cls, option: str | None, flag: str, setting: str, sources: Sources, what: str) -> Queue:
        if option and option.strip():
            return cls(option.strip(), flag)
        found = sources.get(setting)
        if found is not None:
            return cls(found.value, found.source)
        raise CliError(f"no {what}: pass {flag} or set {setting} (environment or local.settings.json)")
