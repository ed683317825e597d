"""Verifying a deletion (contract v2 section 6): what a Get Job answer means, when to look again, and what
a verification message carries. Checked for every status, code and job against a restatement of the
contract's table written here, independently of `VERIFY_RULES`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from delete_job.decision import Action, Outcome, Verdict
from delete_job.records import Received
from delete_job.verification import (
    describe_stuck,
    find,
    is_verification,
    next_verify_delay,
    verification_message,
    verify_verdict,
)
from shared.batch_client import BatchJob, BatchResponse
from shared.batch_errors import BatchTransportError
from shared.identity import TokenUnavailableError
from tests.delete_job.test_decision import CODES, answer

DELETED_AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TIMEOUT = 3600.0
BEFORE = DELETED_AT - timedelta(days=1)
AFTER = DELETED_AT + timedelta(seconds=1)

CONFIRMED = Verdict(Outcome.DELETION_CONFIRMED, Action.COMPLETE)
RECREATED = Verdict(Outcome.RECREATED, Action.COMPLETE)
LOOK_AGAIN = Verdict(Outcome.VERIFICATION_SCHEDULED, Action.DELAY)
QUICK_THEN_LOOK_AGAIN = Verdict(Outcome.VERIFICATION_SCHEDULED, Action.RETRY)
STUCK = Verdict(Outcome.DELETION_STUCK, Action.RECORD)


def with_job(response: BatchResponse, created: datetime | None, state: str = "deleting") -> BatchResponse:
    return replace(response, job=BatchJob("j", state, created, DELETED_AT))


def contract(status: int, code: str | None, created: datetime | None, *, timed_out: bool) -> Verdict:
    """The contract's table, row by row (a look again becomes DeletionStuck once the timeout passed)."""
    if status == 404 and code == "JobNotFound":
        return CONFIRMED
    if 200 <= status <= 299 and created is not None and created > DELETED_AT:
        return RECREATED
    if 200 <= status <= 299 or status == 403:  # "any other job"; 403: delayed retries only
        return STUCK if timed_out else LOOK_AGAIN
    if status in (408, 429) or 500 <= status <= 599 or (status == 409 and code == "JobBeingTerminated"):
        return STUCK if timed_out else QUICK_THEN_LOOK_AGAIN
    return STUCK  # "any other answer (401, other 4xx, 3xx)"


@pytest.mark.parametrize("timed_out", [False, True])
def test_every_status_code_and_job_follows_the_contract_table(timed_out: bool) -> None:
    """For every status 100-599, every code, a job created before/after the deletion or none: the verdict
    is the contract's, before and after deletedAt + VERIFY_DELETION_TIMEOUT."""
    now = DELETED_AT + timedelta(seconds=TIMEOUT + 1 if timed_out else 60)
    wrong = []
    for status in range(100, 600):
        for code in CODES:
            for created in (None, BEFORE, DELETED_AT, AFTER):
                response = with_job(answer(status, code), created)
                got = verify_verdict(
                    find(response, DELETED_AT), now=now, deleted_at=DELETED_AT, timeout=TIMEOUT
                )
                expected = contract(status, code, created, timed_out=timed_out)
                if got != expected:
                    wrong.append(f"{status} {code} created={created}: {got} != {expected}")
    assert wrong == []


@pytest.mark.parametrize(
    "failure",
    [
        BatchTransportError("timeout", "slow"),
        BatchTransportError("connection", "refused"),
        TokenUnavailableError("no"),
    ],
)
def test_no_answer_or_no_token_is_transient_until_the_timeout(failure: Exception) -> None:
    """No answer or no token: quick retries then a look again; past the timeout, DeletionStuck."""
    assert isinstance(failure, BatchTransportError | TokenUnavailableError)
    early = DELETED_AT + timedelta(seconds=10)
    late = DELETED_AT + timedelta(seconds=TIMEOUT)
    assert (
        verify_verdict(find(failure, DELETED_AT), now=early, deleted_at=DELETED_AT, timeout=TIMEOUT)
        == QUICK_THEN_LOOK_AGAIN
    )
    assert (
        verify_verdict(find(failure, DELETED_AT), now=late, deleted_at=DELETED_AT, timeout=TIMEOUT) == STUCK
    )


def test_waits_double_and_stop_one_wait_past_the_timeout() -> None:
    """Verification N waited after*2**(N-1); the next is cut at deletedAt + timeout, and never below after."""
    after, timeout = 300.0, 3600.0
    when, attempt, waits = DELETED_AT + timedelta(seconds=after), 1, [after]
    while when < DELETED_AT + timedelta(seconds=timeout):
        wait = next_verify_delay(attempt, after=after, now=when, deleted_at=DELETED_AT, timeout=timeout)
        waits.append(wait)
        when += timedelta(seconds=wait)
        attempt += 1
    assert waits == [300, 600, 1200, 1500]  # 300+600+1200 = 2100 s; then only the 1500 s left
    assert when == DELETED_AT + timedelta(seconds=timeout)
    late = DELETED_AT + timedelta(seconds=timeout + 5)
    assert next_verify_delay(9, after=after, now=late, deleted_at=DELETED_AT, timeout=timeout) == after
    assert next_verify_delay(10**6, after=1, now=DELETED_AT, deleted_at=DELETED_AT, timeout=10**12) > 0


def received(**properties: Any) -> Received:
    return Received(
        message_id="m-1",
        body=b'{"jobId": "j"}',
        correlation_id="c-1",
        content_type="application/json",
        subject="s",
        application_properties=properties,
    )


def test_verification_message_carries_ids_and_properties() -> None:
    """Id <originalMessageId>:verify<N>; the original's properties less retryAttempt, plus
    originalMessageId, verifyAttempt and deletedAt; same body; scheduled `delay` on."""
    now = DELETED_AT + timedelta(seconds=5)
    first = verification_message(
        received=received(team="a", retryAttempt=2, originalMessageId="orig"),
        attempt=1,
        deleted_at=DELETED_AT,
        delay=300,
        now=now,
    )
    assert first.message_id == "orig:verify1"
    assert first.application_properties == {
        "team": "a",
        "originalMessageId": "orig",
        "verifyAttempt": 1,
        "deletedAt": "2026-11-28T10:00:00.000Z",
    }
    assert (first.body, first.correlation_id, first.content_type, first.subject) == (
        b'{"jobId": "j"}',
        "c-1",
        "application/json",
        "s",
    )
    assert first.scheduled_enqueue_time_utc == now + timedelta(seconds=300)
    plain = verification_message(received=received(), attempt=3, deleted_at=DELETED_AT, delay=1, now=now)
    assert plain.message_id == "m-1:verify3"
    assert plain.application_properties["originalMessageId"] == "m-1"


def test_only_a_verify_attempt_property_makes_a_verification_message() -> None:
    """verifyAttempt present (any value) -> look; absent or null -> an ordinary deletion request."""
    assert is_verification(received(verifyAttempt=1))
    assert is_verification(received(verifyAttempt="x"))
    assert not is_verification(received())
    assert not is_verification(received(verifyAttempt=None, deletedAt="2026-11-28T10:00:00Z"))


def test_stuck_description_names_state_since_and_what_to_do() -> None:
    """A job still deleting: its state, stateTransitionTime, how long, and the operator's two moves."""
    response = with_job(answer(200), BEFORE)
    text = describe_stuck("nightly-42", response, deleted_at=DELETED_AT, now=DELETED_AT + timedelta(hours=1))
    assert text == (
        "Job nightly-42 is still deleting since 2026-11-28T10:00:00.000Z, 1 h after its deletion was"
        " accepted; its tasks may not terminate: check the pool's nodes, or replay with force."
    )
    assert "\n" not in text
    refused = describe_stuck("j", answer(401, "AuthenticationFailed"), deleted_at=DELETED_AT, now=AFTER)
    assert "HTTP 401 AuthenticationFailed" in refused
    silent = describe_stuck("j", BatchTransportError("timeout", "slow"), deleted_at=DELETED_AT, now=AFTER)
    assert "no answer (timeout: slow)" in silent
