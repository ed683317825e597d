"""The data-plane request log: cheap to append (references only), formatted when read."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from emulators._http import Request

LOG_LIMIT = 200_000


def _redacted(authorization: str) -> str:
    """Keep the scheme (a test may check it), never the credential."""
    scheme, _, credential = authorization.partition(" ")
    if scheme == "Bearer" and credential:
        return "Bearer REDACTED"  # one shared string for the usual case
    return f"{scheme} REDACTED" if credential and scheme.isalpha() else "REDACTED"


class Entry:
    """One logged request; ``status`` stays None when the connection was dropped."""

    __slots__ = (
        "fault_id",
        "headers",
        "method",
        "path",
        "query",
        "seq",
        "status",
        "target",
        "time",
        "token_claims",
    )

    def __init__(self, seq: int, request: Request) -> None:
        self.seq = seq
        self.time = time.time()  # formatted only when the log is read
        self.method = request.method
        self.target = request.target
        self.path = request.path
        self.query = request.query
        headers = request.headers
        if "authorization" in headers:  # the log must not keep the token alive either
            headers = {**headers, "authorization": _redacted(headers["authorization"])}
        self.headers = headers
        self.token_claims: dict[str, Any] | None = None
        self.status: int | None = None
        self.fault_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(),
            "method": self.method,
            "target": self.target,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "tokenClaims": self.token_claims,
            "status": self.status,
            "faultId": self.fault_id,
        }


class RequestLog:
    """The last ``limit`` data-plane requests, oldest first (about 1.3 KB each)."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._seq = 0

    def add(self, request: Request) -> Entry:
        self._seq += 1
        entry = Entry(self._seq, request)
        self._entries.append(entry)
        return entry

    def clear(self) -> None:
        self._entries.clear()

    def to_json(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries with ``seq > since``, oldest first; only the newest ``limit`` when given."""
        entries = self._entries
        if since > 0 and entries:
            # seq numbers are consecutive, so the first wanted entry's index is known
            start = max(since - entries[0].seq + 1, 0)
            selected = [entries[i] for i in range(start, len(entries))]
        else:
            selected = list(entries)
        if limit is not None:
            selected = selected[-limit:] if limit > 0 else []
        return [entry.to_json() for entry in selected]
