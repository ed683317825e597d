"""The Batch emulator's state: jobs (case-insensitive ids), their timed transitions, and its config."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
STATES = frozenset({"active", "disabling", "disabled", "enabling", "terminating", "completed", "deleting"})
_TICKS_AT_UNIX_EPOCH = 621_355_968_000_000_000  # .NET DateTime ticks (100 ns) at 1970-01-01
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE = re.compile(
    rf"({'|'.join(_DAYS)}), (\d\d) ({'|'.join(_MONTHS)}) (\d{{4}}) (\d\d):(\d\d):(\d\d) GMT"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso7(moment: datetime) -> str:
    """Batch's JSON timestamps: UTC with 7 fractional digits, e.g. ``2026-11-28T10:00:00.1234560Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Sat, 28 Nov 2026 10:00:00 GMT``."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@functools.lru_cache(maxsize=4096)  # clients send the same ocp-date for a whole second
def parse_http_date(text: str) -> datetime | None:
    """Strict RFC 7231 IMF-fixdate (the only form senders must generate), weekday included;
    None if it is not one. (strptime would cost ~30 µs a request.)"""
    match = _IMF_FIXDATE.fullmatch(text)
    if match is None:
        return None
    day, date, month, year, hour, minute, second = match.groups()
    try:
        moment = datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(date),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return moment if _DAYS[moment.weekday()] == day else None


_last_ticks = 0


def new_etag(moment: datetime) -> str:
    """Batch-style ETag (``0x8D...``: .NET ticks in hex), strictly increasing within the process."""
    global _last_ticks  # noqa: PLW0603 - two changes in one 100 ns tick must still differ
    ticks = int(moment.timestamp() * 10_000_000) + _TICKS_AT_UNIX_EPOCH
    _last_ticks = max(ticks, _last_ticks + 1)
    return f"0x{_last_ticks:X}"


@dataclass
class Config:
    """Behaviour switches, all settable at run time through ``POST /_emulator/config``."""

    deleteDelayMs: int = 0  # field names are the control API JSON keys
    terminateDelayMs: int = 0
    latencyMs: int = 0
    autoCreate: bool = False
    rejectDeleteWhileTerminating: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def merge(self, changes: dict[str, Any]) -> None:
        """Apply ``changes``; raises ``ValueError`` (naming the key) for an unknown key or bad type."""
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown config key {key!r}")
            current = getattr(self, key)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer")
        for key, value in changes.items():
            setattr(self, key, value)


@dataclass
class Job:
    id: str
    state: str
    etag: str
    last_modified: datetime
    creation_time: datetime
    state_transition_time: datetime
    previous_state: str | None = None
    previous_state_transition_time: datetime | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    # monotonic deadlines of pending transitions (None: the state stays until changed)
    remove_at: float | None = None
    complete_at: float | None = None
    # How long a deletion of this job stays in `deleting` (None: the config's deleteDelayMs), and whether
    # it never finishes (a job whose tasks cannot be terminated: contract section 6's DeletionStuck).
    delete_delay_ms: int | None = None
    delete_stuck: bool = False

    def touch(self, moment: datetime | None = None) -> None:
        """A modification: new lastModified and eTag."""
        self.last_modified = moment or utcnow()
        self.etag = new_etag(self.last_modified)

    def transition(self, state: str) -> None:
        now = utcnow()
        self.previous_state, self.previous_state_transition_time = (
            self.state,
            self.state_transition_time,
        )
        self.state, self.state_transition_time = state, now
        self.touch(now)

    def to_json(self, base_url: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "url": f"{base_url}/jobs/{self.id}",
            "eTag": self.etag,
            "lastModified": iso7(self.last_modified),
            "creationTime": iso7(self.creation_time),
            "state": self.state,
            "stateTransitionTime": iso7(self.state_transition_time),
        }
        if self.previous_state is not None and self.previous_state_transition_time is not None:
            body["previousState"] = self.previous_state
            body["previousStateTransitionTime"] = iso7(self.previous_state_transition_time)
        body["poolInfo"] = self.properties.get("poolInfo", {})
        body.update((k, v) for k, v in self.properties.items() if k != "poolInfo")
        return body


def new_job(job_id: str, state: str = "active", properties: dict[str, Any] | None = None) -> Job:
    now = utcnow()
    return Job(
        id=job_id,
        state=state,
        etag=new_etag(now),
        last_modified=now,
        creation_time=now,
        state_transition_time=now,
        properties=properties or {},
    )


class JobStore:
    """Jobs by case-folded id. Timed transitions (terminating -> completed, deleting -> gone)
    are applied lazily whenever a job is looked at, so no timers run."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def get(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id.lower())
        if job is None:
            return None
        now = time.monotonic()
        if job.complete_at is not None and now >= job.complete_at:
            job.complete_at = None
            job.transition("completed")
        if job.remove_at is not None and now >= job.remove_at:
            del self._jobs[job_id.lower()]
            return None
        return job

    def put(self, job: Job) -> None:
        self._jobs[job.id.lower()] = job

    def remove(self, job_id: str) -> None:
        self._jobs.pop(job_id.lower(), None)

    def all(self) -> list[Job]:
        return [job for job in (self.get(key) for key in list(self._jobs)) if job is not None]

    def clear(self) -> None:
        self._jobs.clear()
