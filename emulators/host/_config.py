"""What the local host reads before it loads the app: local settings, host.json, `%SETTING%` names."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HostOptions", "apply_local_settings", "parse_timespan", "read_host_json", "resolve"]

_SETTING_REF = re.compile(r"%([^%]+)%")


def apply_local_settings(app_dir: Path, path: Path | None, env: MutableMapping[str, str]) -> Path | None:
    """Put the `Values` of local.settings.json (else the sample) into `env`, as Core Tools does:
    a variable already set in the environment wins. Returns the file used, if any."""
    candidates = (
        [path]
        if path is not None
        else [
            app_dir / "local.settings.json",
            app_dir / "local.settings.sample.json",
        ]
    )
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            values = json.loads(candidate.read_text(encoding="utf-8")).get("Values", {})
            for name, value in values.items():
                if name not in env and value is not None:
                    env[name] = str(value)
            return candidate
    if path is not None:
        raise FileNotFoundError(f"settings file {path} does not exist")
    return None


def resolve(value: str, env: Mapping[str, str]) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does for binding expressions."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or not env[name]:
            raise KeyError(f"binding expression %{name}% names an app setting that is not set")
        return env[name]

    return _SETTING_REF.sub(lookup, value)


def parse_timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan like "00:05:00" or "1.00:00:00" or "00:00:00.80"."""
    days = 0
    if "." in text.split(":", maxsplit=1)[0]:
        day_text, text = text.split(".", 1)
        days = int(day_text)
    hours, minutes, seconds = text.split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class HostOptions:
    """The Service Bus extension's options from host.json, with the host's defaults."""

    max_concurrent_calls: int
    max_auto_lock_renewal_duration: float
    prefetch_count: int
    auto_complete_messages: bool
    function_timeout: float | None


def read_host_json(app_dir: Path) -> HostOptions:
    path = app_dir / "host.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    service_bus: dict[str, Any] = data.get("extensions", {}).get("serviceBus", {})
    timeout = data.get("functionTimeout")
    return HostOptions(
        max_concurrent_calls=int(service_bus.get("maxConcurrentCalls", 16 * (os.cpu_count() or 1))),
        max_auto_lock_renewal_duration=parse_timespan(
            service_bus.get("maxAutoLockRenewalDuration", "00:05:00")
        ),
        prefetch_count=int(service_bus.get("prefetchCount", 0)),
        auto_complete_messages=bool(service_bus.get("autoCompleteMessages", True)),
        function_timeout=parse_timespan(timeout) if isinstance(timeout, str) else None,
    )
