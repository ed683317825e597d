"""When to try again (contract section 3): a few quick attempts inside the invocation, honouring a
Retry-After of up to 10 s and at most ~30 s in all; then delayed copies along RETRY_DELAYS."""

from __future__ import annotations

import pytest

from delete_job.retry import QuickRetryPolicy, delayed_retry_delay, parse_retry_attempt

POLICY = QuickRetryPolicy()  # delays 0.5, 1, 2; Retry-After up to 10 s; 30 s budget; +/-20 % jitter
NO_JITTER = 0.5  # rand 0.5 is the middle of the jitter range: the base delay exactly
SCHEDULE = (60, 300, 900, 3600, 14400)  # RETRY_DELAYS' default


def read_attempt(value: object) -> int:
    """parse_retry_attempt, where an exception is a failure: it would abandon the message before it is
    even logged, and every redelivery would fail the same way."""
    try:
        return parse_retry_attempt(value)
    except Exception as exc:
        pytest.fail(f"parse_retry_attempt({value!r:.40}) raised {type(exc).__name__}: {exc}")


def quick_waits(
    policy: QuickRetryPolicy,
    *,
    attempt_seconds: float = 0.0,
    retry_after: float | None = None,
    rand: float = NO_JITTER,
) -> tuple[list[float], list[float]]:
    """Play an invocation whose every attempt fails transiently: the waits, and when each attempt began."""
    waits: list[float] = []
    starts = [0.0]
    elapsed = attempt_seconds
    while (delay := policy.next_delay(len(waits), elapsed, retry_after, rand)) is not None:
        waits.append(delay)
        starts.append(elapsed + delay)
        elapsed += delay + attempt_seconds
        assert len(waits) < 100, "quick retries never stop"
    return waits, starts


def test_quick_retries_follow_the_delays_and_stop_after_the_last() -> None:
    """Without Retry-After or jitter, the waits are exactly the configured delays, then no more."""
    waits, _ = quick_waits(POLICY)
    assert waits == [0.5, 1.0, 2.0]
    assert POLICY.next_delay(3, 0.0, None, NO_JITTER) is None


@pytest.mark.parametrize("delays", [(), (1.0,), (0.1,) * 7])
def test_number_of_quick_retries_is_the_number_of_delays(delays: tuple[float, ...]) -> None:
    """However many delays are configured, that many quick retries are made."""
    waits, _ = quick_waits(QuickRetryPolicy(delays=delays))
    assert len(waits) == len(delays)


@pytest.mark.parametrize(
    ("retries_done", "retry_after", "expected"),
    [(0, 7.0, 7.0), (0, 10.0, 10.0), (1, 0.2, 1.0), (2, 2.5, 2.5), (0, 0.0, 0.5)],
)
def test_retry_after_up_to_10_seconds_is_honoured(
    retries_done: int, retry_after: float, expected: float
) -> None:
    """A Retry-After of at most 10 s is waited for; a shorter one does not shorten the base delay."""
    assert POLICY.next_delay(retries_done, 0.0, retry_after, NO_JITTER) == expected


@pytest.mark.parametrize("rand", [0.0, 0.999])
def test_jitter_never_waits_less_than_retry_after(rand: float) -> None:
    """Jitter may shorten the base delay but never below what Batch asked for."""
    delay = POLICY.next_delay(0, 0.0, 0.55, rand)
    assert delay is not None
    assert delay >= 0.55


@pytest.mark.parametrize("retry_after", [10.01, 11.0, 60.0, 3600.0])
def test_longer_retry_after_ends_quick_retries(retry_after: float) -> None:
    """Batch asking for more than 10 s hands over to a delayed retry instead of holding the lock."""
    assert POLICY.next_delay(0, 0.0, retry_after, NO_JITTER) is None


@pytest.mark.parametrize(("elapsed", "retry_after"), [(29.8, None), (29.5, 1.0), (21.0, 10.0), (45.0, None)])
def test_budget_ends_quick_retries(elapsed: float, retry_after: float | None) -> None:
    """A wait that would end past ~30 s since the invocation began is not made."""
    assert POLICY.next_delay(0, elapsed, retry_after, NO_JITTER) is None


@pytest.mark.parametrize(
    ("attempt_seconds", "retry_after"), [(0.0, 10.0), (5.0, 9.0), (12.0, None), (29.0, None)]
)
def test_no_quick_attempt_starts_after_the_budget(attempt_seconds: float, retry_after: float | None) -> None:
    """Slow attempts and long Retry-Afters cut the quick retries short: none begins after 30 s."""
    _, starts = quick_waits(POLICY, attempt_seconds=attempt_seconds, retry_after=retry_after)
    assert max(starts) <= POLICY.budget


def test_budget_cuts_a_slow_invocation_short() -> None:
    """With Retry-After 9 s and 5 s attempts, only two quick retries fit in 30 s."""
    waits, starts = quick_waits(POLICY, attempt_seconds=5.0, retry_after=9.0)
    assert waits == [9.0, 9.0]
    assert starts == [0.0, 14.0, 28.0]


@pytest.mark.parametrize("retries_done", [0, 1, 2])
def test_jitter_bounds(retries_done: int) -> None:
    """Jitter keeps each wait within +/-20 % of its base delay: rand 0 is the low end, 0.999 near the top."""
    base = POLICY.delays[retries_done]
    low = POLICY.next_delay(retries_done, 0.0, None, 0.0)
    high = POLICY.next_delay(retries_done, 0.0, None, 0.999)
    assert low == pytest.approx(base * 0.8)
    assert high is not None
    assert base * 1.19 < high < base * 1.2


def test_jitter_spreads_waits() -> None:
    """Different random numbers give different waits, so many failing messages do not retry in step."""
    waits = {POLICY.next_delay(0, 0.0, None, rand) for rand in (0.0, 0.25, 0.5, 0.75)}
    assert len(waits) == 4


@pytest.mark.parametrize(("retry_attempt", "step"), list(enumerate(SCHEDULE)))
def test_delayed_retries_follow_the_schedule(retry_attempt: int, step: int) -> None:
    """Delayed retry N+1 waits the schedule's Nth step."""
    assert delayed_retry_delay(retry_attempt, SCHEDULE, None) == step


@pytest.mark.parametrize(("retry_attempt", "retry_after", "expected"), [(0, 120.0, 120.0), (1, 120.0, 300.0)])
def test_longer_retry_after_wins_over_the_schedule(
    retry_attempt: int, retry_after: float, expected: float
) -> None:
    """A Retry-After longer than the step is honoured; a shorter one does not shorten it."""
    assert delayed_retry_delay(retry_attempt, SCHEDULE, retry_after) == expected


@pytest.mark.parametrize(("retry_attempt", "retry_after"), [(5, None), (6, None), (5, 30.0), (1000, None)])
def test_no_delayed_retry_when_the_schedule_is_used_up(retry_attempt: int, retry_after: float | None) -> None:
    """After the last step, there is no further retry (the caller records RetriesExhausted)."""
    assert delayed_retry_delay(retry_attempt, SCHEDULE, retry_after) is None


def test_an_empty_schedule_means_no_delayed_retry() -> None:
    """RETRY_DELAYS with no steps gives up at the first transient failure."""
    assert delayed_retry_delay(0, (), None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (3, 3),
        ("2", 2),
        (" 4 ", 4),
        (b"5", 5),
        (True, 0),
        (False, 0),
        (-1, 0),
        ("-1", 0),
        (None, 0),
        ("", 0),
        ("three", 0),
        ("1.5", 0),
        (2.5, 0),
        (b"\xff", 0),
        ([1], 0),
        ("²", 0),
        ("①", 0),
    ],
    ids=repr,
)
def test_parse_retry_attempt(value: object, expected: int) -> None:
    """The retryAttempt property is read as a count; anything unreadable counts as a first delivery."""
    assert read_attempt(value) == expected


def test_parse_retry_attempt_survives_a_5000_digit_number() -> None:
    """A producer-set retryAttempt too long for int() still gives a count instead of an exception."""
    count = read_attempt("9" * 5000)
    assert isinstance(count, int)
    assert count >= 0
