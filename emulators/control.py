"""Typed synchronous clients for the emulators' control APIs (``/_emulator/``), for tests and demos.

Every method raises ``httpx.HTTPStatusError`` when the emulator refuses the call (its JSON body
says why), except the lookups documented to return None.
"""

from __future__ import annotations

import functools
import ssl
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

__all__ = ["BatchEmulator", "IdentityEndpoint", "IngestionEndpoint"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One default TLS context per process: httpx builds a new one (~30 ms) per client otherwise."""
    return ssl.create_default_context()


class _ControlClient:
    def __init__(self, url: str, *, timeout: float = 10.0, verify: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self._http = httpx.Client(
            base_url=f"{self.base_url}/_emulator", timeout=timeout, verify=verify or tls_context()
        )

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._http.request(method, path, json=json)
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class BatchEmulator(_ControlClient):
    """Control client for ``python -m emulators.batch``; ``url`` is the emulator's base URL."""

    def reset(self) -> None:
        """Jobs, faults, request log, stats and config back to the process's start-up state."""
        self._call("POST", "/reset")

    def add_job(self, job_id: str, state: str = "active", **properties: Any) -> dict[str, Any]:
        """Create or replace a job; ``properties`` may set ``eTag``, ``lastModified`` (RFC 3339),
        ``creationTime``, ``poolInfo`` or any other job property."""
        job: dict[str, Any] = self._call("POST", "/jobs", {"id": job_id, "state": state, **properties})
        return job

    def add_jobs(self, job_ids: list[str], state: str = "active") -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._call("POST", "/jobs", {"ids": job_ids, "state": state})
        return jobs

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job as the data plane would show it, or None when there is none (any case)."""
        response = self._http.get(f"/jobs/{quote(job_id, safe='')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self._call("GET", "/jobs")
        return jobs

    def add_fault(self, **fault: Any) -> str:
        """Install a fault (keys as in the control API: ``match``, ``times``, ``status``, ``code``,
        ``retryAfter``, ``latencyMs``, ``drop``, ``body``, ``raw``, ``redirect``, ``apply``, ...);
        its id."""
        fault_id: str = self._call("POST", "/faults", fault)["id"]
        return fault_id

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("GET", "/faults")
        return faults

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, *, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The data-plane request log, oldest first: entries with ``seq > since``; only the
        newest ``limit`` when given."""
        params: dict[str, int] = {"since": since}
        if limit is not None:
            params["limit"] = limit
        response = self._http.get("/requests", params=params)
        response.raise_for_status()
        log: list[dict[str, Any]] = response.json()
        return log

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def configure(self, **config: Any) -> dict[str, Any]:
        """Merge ``deleteDelayMs``, ``terminateDelayMs``, ``latencyMs``, ``autoCreate``,
        ``rejectDeleteWhileTerminating``; returns the whole config."""
        merged: dict[str, Any] = self._call("POST", "/config", config)
        return merged

    def config(self) -> dict[str, Any]:
        current: dict[str, Any] = self._call("GET", "/config")
        return current

    def stats(self) -> dict[str, Any]:
        """``{"requests": n, "byStatus": {"202": n, ..., "dropped": n}}``"""
        stats: dict[str, Any] = self._call("GET", "/stats")
        return stats


class IdentityEndpoint(_ControlClient):
    """Control client for ``python -m emulators.identity``; ``url`` may be the token URL."""

    @property
    def token_url(self) -> str:
        """The value for ``IDENTITY_ENDPOINT``."""
        return f"{self.base_url}/msi/token"

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stats(self) -> dict[str, Any]:
        """``{"tokenRequests": n, "byResource": {...}, "byClientId": {...}, "byStatus": {...}}``"""
        stats: dict[str, Any] = self._call("GET", "/stats")
        return stats

    def add_fault(
        self,
        *,
        times: int | None = 1,
        status: int | None = None,
        drop: bool = False,
        latency_ms: float = 0,
        for_seconds: float | None = None,
    ) -> str:
        """The next ``times`` token requests (None: all) wait ``latency_ms``, then fail with
        ``status`` or have their connection dropped (or, with neither, are answered normally).
        ``for_seconds``: only those within that many seconds of the first one it meets (an outage that
        ends by itself)."""
        fault: dict[str, Any] = {"times": times, "drop": drop, "latencyMs": latency_ms}
        if status is not None:
            fault["status"] = status
        if for_seconds is not None:
            fault["forSeconds"] = for_seconds
        fault_id: str = self._call("POST", "/faults", fault)["id"]
        return fault_id

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def configure(self, *, lifetime_seconds: int) -> dict[str, Any]:
        config: dict[str, Any] = self._call("POST", "/config", {"lifetimeSeconds": lifetime_seconds})
        return config

    def config(self) -> dict[str, Any]:
        """``{"lifetimeSeconds", "tenantId", "systemClientId", "clientIds"}``"""
        config: dict[str, Any] = self._call("GET", "/config")
        return config


class IngestionEndpoint(_ControlClient):
    """Control client for ``python -m emulators.ingestion``: ``certificate`` is the ``cert.pem`` the
    stand-in wrote to its ``--tls-dir`` (it serves HTTPS only, its control API too)."""

    def __init__(self, url: str, certificate: str, *, timeout: float = 10.0) -> None:
        super().__init__(url, timeout=timeout, verify=ssl.create_default_context(cafile=certificate))

    def connection_string(self, instrumentation_key: str) -> str:
        """An ``APPLICATIONINSIGHTS_CONNECTION_STRING`` whose ingestion endpoint is this stand-in."""
        return f"InstrumentationKey={instrumentation_key};IngestionEndpoint={self.base_url}/"

    def reset(self) -> None:
        self._call("POST", "/reset")

    def envelopes(self, *, since: int = 0) -> list[dict[str, Any]]:
        """The accepted envelopes, oldest first (after the ``since``-th)."""
        response = self._http.get("/envelopes", params={"since": since})
        response.raise_for_status()
        envelopes: list[dict[str, Any]] = response.json()
        return envelopes

    def uploads(self) -> list[dict[str, Any]]:
        """One entry per upload: ``status``, ``items``, ``contentType``, ``contentEncoding``, and the
        token's ``audience`` and ``clientId`` (or why it was ``refused``)."""
        uploads: list[dict[str, Any]] = self._call("GET", "/uploads")
        return uploads

    def stats(self) -> dict[str, Any]:
        """``{"uploads": n, "accepted": n, "byStatus": {"200": n, "401": n, ...}}``"""
        stats: dict[str, Any] = self._call("GET", "/stats")
        return stats
