"""Injected faults: what a test asks the next matching requests to suffer.

A fault matches on method, job id (case-insensitive) and path prefix; the first matching fault with
times left applies and is counted down. A fault that only sets ``latencyMs`` delays the request,
which is then processed normally; any other fault answers in Batch's place (or drops the socket).
``raw`` answers with text that need not be HTTP at all (a proxy's banner, half a response), then closes
the connection; the request log records it as dropped. ``forSeconds`` limits a fault to the requests that
arrive within that many seconds of the first one it met (say, a 403 until a new role assignment applies;
counted from the first request, so that a slow start does not use the window up).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from emulators._http import Request, Response, reason_phrase
from emulators.batch._errors import (
    DEFAULT_CODES,
    ERROR_CONTENT_TYPE,
    ERRORS,
    common_headers,
    error_body,
)

_KEYS = frozenset(
    {
        "match",
        "times",
        "status",
        "code",
        "message",
        "values",
        "retryAfter",
        "headers",
        "latencyMs",
        "drop",
        "body",
        "redirect",
        "apply",
        "raw",
        "forSeconds",
    }
)
_MATCH_KEYS = frozenset({"method", "jobId", "path"})
_ANSWER_KEYS = _KEYS - {"match", "times", "latencyMs", "apply", "forSeconds"}
_ids = itertools.count(1)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise ValueError(f"{name} must be a single-line string")
    return value


@dataclass
class Fault:
    id: str
    spec: dict[str, Any]  # as given, for listing
    remaining: int | None
    method: str | None = None
    job_id: str | None = None
    path: str | None = None
    latency: float = 0.0
    answers: bool = False
    apply: bool = False
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    seconds: float | None = None  # forSeconds
    until: float | None = None  # time.monotonic() after which the fault no longer applies (set on first use)

    def matches(self, request: Request) -> bool:
        if self.remaining == 0 or (self.until is not None and time.monotonic() >= self.until):
            return False
        if self.method is not None and request.method != self.method:
            return False
        if self.path is not None and not request.path.startswith(self.path):
            return False
        if self.job_id is not None:
            segments = request.segments
            if len(segments) < 2 or segments[0] != "jobs" or segments[1].lower() != self.job_id:
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "remaining": self.remaining, **self.spec}

    def response(self, base_url: str, request_id: str, client_request_id: str | None) -> Response:
        """The answer this fault gives instead of Batch's (``drop`` closes the socket)."""
        spec = self.spec
        if spec.get("raw") is not None:
            return Response(drop=True, raw=spec["raw"].encode())
        if spec.get("drop"):
            return Response(drop=True)
        redirect = spec.get("redirect")
        code = spec.get("code")
        default_status = 307 if redirect else ERRORS[code][0] if code in ERRORS else 503
        status: int = spec.get("status") or default_status
        headers: list[tuple[str, str]] = []
        body_kind = spec.get("body")
        body = b""
        if redirect:
            headers.append(("Location", redirect))
        elif body_kind is None:
            code = code or DEFAULT_CODES.get(status, "ServerError")
            headers.append(("Content-Type", ERROR_CONTENT_TYPE))
            headers.extend(common_headers(request_id, client_request_id))
            body = error_body(base_url, code, request_id, spec.get("message"), spec.get("values"))
        elif body_kind == "text":
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
            body = f"{status} {reason_phrase(status)}".encode()
        elif body_kind == "html":
            headers.append(("Content-Type", "text/html"))
            title = f"{status} {reason_phrase(status)}"
            body = (
                f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1>"
                "</center><hr><center>emulated gateway</center></body></html>"
            ).encode()
        elif isinstance(body_kind, dict):
            headers.append(("Content-Type", body_kind.get("contentType", "application/octet-stream")))
            body = body_kind["raw"].encode()
        retry_after = spec.get("retryAfter")
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        headers.extend(self.extra_headers)
        return Response(status, headers, body)


def _check_match(spec: dict[str, Any]) -> dict[str, str]:
    match = spec.get("match") or {}
    if not isinstance(match, dict) or set(match) - _MATCH_KEYS:
        raise ValueError(f"match is an object with keys among {sorted(_MATCH_KEYS)}")
    return {key: _text(value, f"match.{key}") for key, value in match.items()}


def _check_number(value: Any, name: str, *, minimum: int, integer: bool) -> None:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")


def _check_body(body: Any) -> None:
    if body is None or body in ("empty", "text", "html"):
        return
    if not (isinstance(body, dict) and isinstance(body.get("raw"), str)):
        raise ValueError('body is "empty", "text", "html" or {"raw": ..., "contentType": ...}')
    if set(body) - {"raw", "contentType"}:
        raise ValueError('body is {"raw": ..., "contentType": ...}')
    if "contentType" in body:
        _text(body["contentType"], "body.contentType")


def _check_answer(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Validate what the fault answers with; returns its extra headers."""
    if spec.get("status") is not None:
        _check_number(spec["status"], "status", minimum=100, integer=True)
        if spec["status"] > 599:
            raise ValueError("status must be at most 599")
    for key in ("code", "retryAfter", "redirect"):
        if spec.get(key) is not None:
            _text(spec[key], key)
    if spec.get("message") is not None and not isinstance(spec["message"], str):
        raise ValueError("message must be a string")
    values = spec.get("values")
    if values is not None and not (
        isinstance(values, list) and all(isinstance(v, dict) and set(v) == {"key", "value"} for v in values)
    ):
        raise ValueError('values must be a list of {"key": ..., "value": ...}')
    _check_body(spec.get("body"))
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("headers must be an object")
    return [(_text(k, "header name"), _text(v, f"header {k}")) for k, v in headers.items()]


def parse_fault(spec: Any) -> Fault:
    """Validate a fault as posted to ``/_emulator/faults``; raises ``ValueError`` saying why."""
    if not isinstance(spec, dict):
        raise ValueError("a fault is a JSON object")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    match = _check_match(spec)
    times = spec.get("times", 1)
    if times is not None:
        _check_number(times, "times (or null: unlimited)", minimum=1, integer=True)
    latency = spec.get("latencyMs", 0)
    _check_number(latency, "latencyMs", minimum=0, integer=False)
    seconds = spec.get("forSeconds")
    if seconds is not None:
        _check_number(seconds, "forSeconds", minimum=0, integer=False)
    for flag in ("drop", "apply"):
        if not isinstance(spec.get(flag, False), bool):
            raise ValueError(f"{flag} must be a boolean")
    extra_headers = _check_answer(spec)
    if spec.get("raw") is not None:
        if not isinstance(spec["raw"], str) or not spec["raw"]:
            raise ValueError("raw must be a non-empty string")
        others = sorted(key for key in _ANSWER_KEYS - {"raw"} if spec.get(key) not in (None, False))
        if others:
            raise ValueError(f"raw is the whole answer: it cannot be combined with {others}")
    method, job_id = match.get("method"), match.get("jobId")
    return Fault(
        id=f"fault-{next(_ids)}",
        spec=spec,
        remaining=times,
        method=method.upper() if method else None,
        job_id=job_id.lower() if job_id else None,
        path=match.get("path"),
        latency=latency / 1000,
        answers=any(spec.get(key) not in (None, False) for key in _ANSWER_KEYS),
        apply=spec.get("apply", False),
        extra_headers=extra_headers,
        seconds=seconds,
    )


class Faults:
    """The installed faults, in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take(self, request: Request) -> Fault | None:
        """The first matching fault with times left, counted down; None when none applies."""
        if not self._faults:
            return None
        for fault in self._faults:
            if fault.matches(request):
                if fault.remaining is not None:
                    fault.remaining -= 1
                if fault.seconds is not None and fault.until is None:
                    fault.until = time.monotonic() + fault.seconds  # the window starts with its first request
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._faults]
