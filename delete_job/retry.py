"""When to try again (contract section 3): quick retries inside the invocation, then delayed copies.

Pure: callers pass the elapsed time and a random number; nothing here sleeps or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QuickRetryPolicy", "delayed_retry_delay", "parse_retry_attempt"]


@dataclass(frozen=True, slots=True)
class QuickRetryPolicy:
    """A few quick attempts while holding the message lock: `delays[i]` is the wait before retry i+1
    (with +/- `jitter`), replaced by a longer Retry-After of at most `max_retry_after` seconds. A longer
    Retry-After, or a wait that would end past `budget` seconds since the invocation began, ends the
    quick retries: a delayed retry takes over without holding the lock."""

    delays: tuple[float, ...] = (0.5, 1.0, 2.0)
    max_retry_after: float = 10.0
    budget: float = 30.0
    jitter: float = 0.2

    def next_delay(
        self, retries_done: int, elapsed: float, retry_after: float | None, rand: float
    ) -> float | None:
        """Seconds to wait before the next quick attempt, or None to stop. `rand` is in [0, 1)."""
        if retries_done >= len(self.delays):
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        delay = self.delays[retries_done] * (1 + self.jitter * (2 * rand - 1))
        if retry_after is not None:
            delay = max(delay, retry_after)
        if elapsed + delay > self.budget:
            return None
        return delay


def delayed_retry_delay(
    retry_attempt: int, schedule: tuple[int, ...], retry_after: float | None
) -> float | None:
    """Seconds until the next delayed retry copy is delivered, or None when `schedule` is used up.
    `retry_attempt` counts the delayed retries before this delivery."""
    if retry_attempt >= len(schedule):
        return None
    step = float(schedule[retry_attempt])
    return max(step, retry_after) if retry_after is not None else step


def parse_retry_attempt(value: object) -> int:
    """The `retryAttempt` property as a count; anything unreadable counts as 0 (a first delivery)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only ("²".isdigit() is true), and no absurd lengths.
        if text.isascii() and text.isdigit() and len(text) <= 9:
            return int(text)
    return 0
