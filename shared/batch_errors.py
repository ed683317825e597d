"""What Batch said when it said no, and what went wrong when it said nothing.

    ValueError
     └── InvalidRequestError      a request we refuse to build (bad job ID, header value); no I/O done
    Exception
     └── BatchTransportError      no answer: `kind` is "timeout" or "connection"

A Batch *answer* (any HTTP status) is never an exception: it is a `BatchResponse` carrying the parsed
`BatchError`, so the caller's decision table sees every status the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MAX_RAW_ERROR_CHARS",
    "BatchError",
    "BatchErrorDetail",
    "BatchErrorMessage",
    "BatchTransportError",
    "InvalidRequestError",
    "parse_batch_error",
]

# The raw text of a body that is not Batch's JSON is kept up to this many characters.
MAX_RAW_ERROR_CHARS = 4096


class InvalidRequestError(ValueError):
    """The request was refused before anything was sent; `field` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class BatchTransportError(Exception):
    """Batch gave no answer: the connection failed or dropped (`connection`) or took too long
    (`timeout`). The message names the failure, never a header or a token."""

    def __init__(self, kind: Literal["timeout", "connection"], message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class BatchErrorMessage:
    lang: str | None
    value: str | None


@dataclass(frozen=True, slots=True)
class BatchErrorDetail:
    key: str | None
    value: str | None


@dataclass(frozen=True, slots=True)
class BatchError:
    """Batch's `BatchError` body: code, message{lang, value}, values[{key, value}]."""

    code: str
    message: BatchErrorMessage | None = None
    values: tuple[BatchErrorDetail, ...] = ()
    # The body as Batch sent it, restricted to the BatchError fields, for failure records.
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def value(self, key: str) -> str | None:
        """The value of the first detail named `key` (e.g. "HeaderName")."""
        return next((d.value for d in self.values if d.key == key), None)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_batch_error(body: bytes) -> BatchError | None:
    """Parse Batch's error JSON; None when the body is empty, not JSON, or JSON of another shape."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        return None
    raw_message = data.get("message")
    message: BatchErrorMessage | None = None
    if isinstance(raw_message, dict):
        message = BatchErrorMessage(
            lang=_opt_str(raw_message.get("lang")), value=_opt_str(raw_message.get("value"))
        )
    elif isinstance(raw_message, str):
        message = BatchErrorMessage(lang=None, value=raw_message)
    raw_values = data.get("values")
    values = tuple(
        BatchErrorDetail(key=_opt_str(item.get("key")), value=_opt_str(item.get("value")))
        for item in (raw_values if isinstance(raw_values, list) else [])
        if isinstance(item, dict)
    )
    raw: dict[str, Any] = {
        "code": data["code"],
        "message": raw_message,
        "values": raw_values if isinstance(raw_values, list) else [],
    }
    return BatchError(code=data["code"], message=message, values=values, raw=raw)
