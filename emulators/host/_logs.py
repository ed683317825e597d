"""Logging for the local host: readable lines on stderr, and optionally every record as JSON lines
with its custom dimensions (the `extra=` fields), as Application Insights would store them."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from emulators.canary import watch_logging

__all__ = ["JsonLinesFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "customDimensions": {k: v for k, v in vars(record).items() if k not in _STANDARD},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _not_the_auth_level_note(record: logging.LogRecord) -> bool:
    """azure-functions warns at import that an auth level does not apply to a non-HTTP app; this app
    has no HTTP function, so the warning says nothing (it still reaches --log-file)."""
    return not record.getMessage().startswith("Auth level is not applied to non http function app")


def _the_app_at_information(record: logging.LogRecord) -> bool:
    """The app's own records from Information up, as the real host's console shows them at host.json's
    default level (one line per message: outcome, job, Batch's answer); the host's and the SDKs' from
    Warning up."""
    if record.levelno >= logging.WARNING:
        return True
    return not record.name.startswith(("emulators", "azure", "uamqp", "asyncio", "root"))


def configure_logging(*, verbose: bool, json_file: str | None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.INFO)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    stderr.addFilter(_not_the_auth_level_note)
    if not verbose:
        stderr.addFilter(_the_app_at_information)
    root.addHandler(stderr)
    if json_file:
        handler = logging.FileHandler(json_file, encoding="utf-8")
        handler.setFormatter(JsonLinesFormatter())
        root.addHandler(handler)
    watch_logging("Functions host")  # reports any record holding the test canary (emulators.canary)
    for noisy in ("azure", "uamqp"):  # the SDKs' INFO chatter is not the app's
        logging.getLogger(noisy).setLevel(logging.WARNING)
