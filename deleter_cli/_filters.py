"""Which dead letters a command works on: `--reason`, `--code`, `--job`, `--since`, `--id` (pure).

Each option may be repeated (any of its values matches); different options must all match. Matching is
case-insensitive (Batch job ids are). `--since` takes an ISO 8601 date-time (UTC when it has no offset)
or a duration back from now: `30m`, `2h`, `7d`, `1d12h`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from deleter_cli._deadletter import DeadLetter

__all__ = ["Filters", "parse_since"]

_DURATION = re.compile(r"(?:(\d+)([smhdw]))+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """The moment `text` names; ValueError with what is accepted when it names none."""
    value = text.strip()
    if _DURATION.fullmatch(value.lower()):
        delta = timedelta()
        for amount, unit in _DURATION_PART.findall(value.lower()):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
        return now - delta
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 date-time (2026-11-28T10:00:00Z) nor a duration (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _folded(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(v.strip().casefold() for v in values or () if v.strip())


@dataclass(frozen=True)
class Filters:
    reasons: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()  # a Batch error code, or an HTTP status
    jobs: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()  # a message id, or a sequence number
    since: datetime | None = None

    @classmethod
    def create(
        cls,
        *,
        reasons: Sequence[str] | None = None,
        codes: Sequence[str] | None = None,
        jobs: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        since: datetime | None = None,
    ) -> Filters:
        return cls(
            _folded(reasons), _folded(codes), _folded(jobs), tuple(i.strip() for i in ids or ()), since
        )

    def matches(self, dead_letter: DeadLetter) -> bool:
        envelope = dead_letter.envelope
        checks = (
            (self.reasons, {dead_letter.reason}),
            (self.codes, {dead_letter.batch_error_code, str(dead_letter.http_status or "")}),
            (self.jobs, {dead_letter.job_id}),
        )
        for wanted, values in checks:
            if wanted and not {v.casefold() for v in values if v} & set(wanted):
                return False
        numbers = {str(envelope.sequence_number), f"#{envelope.sequence_number}"}
        if self.ids and not ({envelope.message_id} | numbers) & set(self.ids):
            return False
        if self.since is not None:
            return dead_letter.failed_at is not None and dead_letter.failed_at >= self.since
        return True
