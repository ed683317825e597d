"""The secrets canary: a recognisable string that must never show up where it does not belong.

The test session puts a random ``CANARY-...`` string in ``EMULATOR_CANARY`` and a file path in
``EMULATOR_CANARY_REPORT``; every emulator it starts inherits both. The identity endpoint then embeds the
canary in every token it issues, so the only place it may ever travel is a Batch ``Authorization``
header. A process that sees it anywhere else appends one line to the report file saying where (never the
canary itself), and the session fails if the file has a line. Without ``EMULATOR_CANARY`` nothing here
costs anything.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

__all__ = [
    "CANARY_ENV",
    "REPORT_ENV",
    "CanaryLogHandler",
    "current",
    "describe_record",
    "report",
    "request_part",
    "watch_logging",
]

CANARY_ENV = "EMULATOR_CANARY"
REPORT_ENV = "EMULATOR_CANARY_REPORT"
_PLACEHOLDER = "<canary>"
# Attributes every LogRecord has; anything else came in through `extra=` (custom dimensions).
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_formatter = logging.Formatter()


def current() -> str | None:
    """The canary this process watches for, or None when the check is off."""
    return os.environ.get(CANARY_ENV) or None


def report(where: str) -> None:
    """Append one line (process id and ``where``) to the report file, or to stderr without one.
    The canary, should ``where`` quote it, is replaced: a report must not spread it further."""
    canary = current()
    text = " ".join(where.split())
    if canary:
        text = text.replace(canary, _PLACEHOLDER)
    line = f"pid {os.getpid()}: {text}\n"
    path = os.environ.get(REPORT_ENV)
    if not path:
        sys.stderr.write(f"canary seen: {line}")
        return
    with open(path, "a", encoding="utf-8") as out:  # one short append: whole lines from many processes
        out.write(line)


def request_part(
    canary: str, target: str, headers: dict[str, str], body: bytes, *, skip: str | None = None
) -> str | None:
    """Which part of an HTTP request holds ``canary`` (its target, a header named by name, its body),
    or None. The header named ``skip`` is not looked at (Batch's ``authorization`` carries the token)."""
    if canary in target:
        return "request target (path or query)"
    for name, value in headers.items():
        if name != skip and (canary in value or canary in name):
            return f"header {name!r}" if canary not in name else "a header name"
    if body and canary.encode() in body:
        return "body"
    return None


def describe_record(record: logging.LogRecord, canary: str) -> str | None:
    """Which part of ``record`` holds ``canary`` (message, a custom dimension, the exception or stack),
    or None. Everything a handler or formatter could write is looked at."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: the parts, as logging's own error report shows them
        message = f"{record.msg!r} {record.args!r}"
    if canary in message:
        return "message"
    for key, value in vars(record).items():
        if key in _STANDARD and key not in ("exc_text", "stack_info"):
            continue
        text = value if isinstance(value, str) else f"{value!r} {value}"  # repr, and str as JSON's default
        if canary in key or canary in text:
            return f"field {key}"
    if record.exc_info and canary in _formatter.formatException(record.exc_info):
        return "exception"
    return None


class CanaryLogHandler(logging.Handler):
    """Reports every log record that holds the canary; writes nothing else anywhere.

    ``name`` says which process (or logger set-up) the report line comes from; ``sink`` receives the
    line (``report`` by default)."""

    def __init__(self, name: str, canary: str, sink: Callable[[str], None] = report) -> None:
        super().__init__(logging.NOTSET)
        self._name = name
        self._canary = canary
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            part = describe_record(record, self._canary)
            if part is not None:
                self._sink(
                    f"{self._name}: log record {record.name} {record.levelname} "
                    f"({record.pathname}:{record.lineno}) holds the canary in its {part}"
                )
        except Exception:
            self.handleError(record)


def watch_logging(name: str) -> None:
    """Add a ``CanaryLogHandler`` to the root logger, if the canary is set."""
    canary = current()
    if canary:
        logging.getLogger().addHandler(CanaryLogHandler(name, canary))
