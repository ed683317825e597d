"""Knowing that the job is gone (contract section 6): verification messages and what a Get Job means.

A 202 from Delete Job means Batch *started* deleting. After `Deleted` or `AlreadyDeleting` the processor
schedules a verification message; processing one never deletes anything: it asks Batch for the job
(`BatchClient.get_job`) and decides here. Everything in this module but `Verifier` is pure (no I/O, the
time is passed in); `Verifier` carries the decisions out with the processor's client, token, deadline
and quick-retry rules, so that the processor only hands a verification message over.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from delete_job.attempt import bounded_attempt
from delete_job.decision import Action, Answer, Outcome, Verdict, decide
from delete_job.records import Received, failure_record, redact
from delete_job.request import DeletionRequest
from delete_job.retry import QuickRetryPolicy, parse_retry_attempt
from shared.batch_client import BatchClient, BatchResponse
from shared.batch_errors import BatchTransportError
from shared.identity import TokenUnavailableError
from shared.servicebus import OutgoingMessage

if TYPE_CHECKING:
    from delete_job.processor import Result, Sender

__all__ = [
    "VERIFY_RULES",
    "Finding",
    "Verifier",
    "describe_stuck",
    "find",
    "is_verification",
    "next_verify_delay",
    "verification_message",
    "verify_verdict",
]


class Finding(StrEnum):
    """What one Get Job answer says about the deleted job."""

    GONE = "gone"  # 404 JobNotFound
    RECREATED = "recreated"  # 2xx, created after the deletion: a new job with the same id
    STILL_THERE = "still there"  # 2xx, the job we deleted (deleting, or any other state)
    TRANSIENT = "transient"  # 408, 429, 5xx, no answer, no token: as a delete would be retried
    NOT_YET_AUTHORIZED = "not yet authorized"  # 403: no quick retries (roles take minutes to apply)
    REFUSED = "refused"  # 401, 3xx, any other 4xx: looking again will not change it


# Service Bus schedules any time ahead, but a look more than a week away helps nobody (as RETRY_DELAYS).
_MAX_WAIT = 7 * 24 * 3600.0

_LOOK_AGAIN = Verdict(Outcome.VERIFICATION_SCHEDULED, Action.DELAY)
_STUCK = Verdict(Outcome.DELETION_STUCK, Action.RECORD)

# Contract section 6's table. DELAY = the next verification message at once; RETRY = quick retries
# first (as a delete would), then the next verification message. Either becomes `_STUCK` once
# `deletedAt + VERIFY_DELETION_TIMEOUT` has passed (`verify_verdict`).
VERIFY_RULES: dict[Finding, Verdict] = {
    Finding.GONE: Verdict(Outcome.DELETION_CONFIRMED, Action.COMPLETE),
    Finding.RECREATED: Verdict(Outcome.RECREATED, Action.COMPLETE),
    Finding.STILL_THERE: _LOOK_AGAIN,
    Finding.TRANSIENT: Verdict(Outcome.VERIFICATION_SCHEDULED, Action.RETRY),
    Finding.NOT_YET_AUTHORIZED: _LOOK_AGAIN,
    Finding.REFUSED: _STUCK,
}


def find(answer: Answer, deleted_at: datetime) -> Finding:
    """What Batch's answer to a Get Job (or the lack of one) says about the job deleted at `deleted_at`."""
    if isinstance(answer, BatchResponse):
        if answer.status == 404 and answer.error_code == "JobNotFound":
            return Finding.GONE
        if answer.ok:
            created = answer.job.creation_time if answer.job else None
            # Batch's clock against ours: a job created before the deletion was accepted is ours.
            if created is not None and created > deleted_at:
                return Finding.RECREATED
            return Finding.STILL_THERE
        if answer.status == 403:
            return Finding.NOT_YET_AUTHORIZED
    # Transient exactly as for a delete (contract section 3's table): one policy for "try again".
    if decide(answer).action is Action.RETRY:
        return Finding.TRANSIENT
    return Finding.REFUSED


def verify_verdict(finding: Finding, *, now: datetime, deleted_at: datetime, timeout: float) -> Verdict:
    """The verdict for a finding: looking again stops once `deleted_at + timeout` has passed."""
    verdict = VERIFY_RULES[finding]
    if verdict.outcome is Outcome.VERIFICATION_SCHEDULED and (now - deleted_at).total_seconds() >= timeout:
        return _STUCK
    return verdict


def next_verify_delay(
    attempt: int, *, after: float, now: datetime, deleted_at: datetime, timeout: float
) -> float:
    """Seconds until verification `attempt + 1`, when `attempt` found the job still there: twice the
    previous wait (`after`, 2*after, 4*after, ...), cut at `deleted_at + timeout` so that the last look
    comes at most one wait past it (never less than `after`, so a late clock cannot make a busy loop)."""
    wait = min(after * 2.0 ** min(max(attempt, 1), 40), _MAX_WAIT)  # attempt N waited after * 2**(N-1)
    left = timeout - (now - deleted_at).total_seconds()  # in seconds: a huge timeout cannot overflow a date
    return max(min(wait, left), after)


def is_verification(received: Received) -> bool:
    """A message with a `verifyAttempt` property is a verification message: it never deletes."""
    return received.application_properties.get("verifyAttempt") is not None


def verify_attempt(received: Received) -> int:
    return max(parse_retry_attempt(received.application_properties.get("verifyAttempt")), 1)


def deleted_at(received: Received, now: datetime) -> datetime:
    """The `deletedAt` property; a verification message without a readable one (a producer set
    `verifyAttempt` by hand) counts from when it was enqueued."""
    value = received.application_properties.get("deletedAt")
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, datetime):
        moment: datetime | None = value
    else:
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        return received.enqueued_time_utc or now
    return moment


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def verification_message(
    *, received: Received, attempt: int, deleted_at: datetime, delay: float, now: datetime
) -> OutgoingMessage:
    """Verification `attempt` of the request in `received`: same body, the original's properties (less
    `retryAttempt`) plus `originalMessageId`, `verifyAttempt` and `deletedAt`; scheduled `delay` s on."""
    original_id = received.original_message_id
    properties: dict[str, Any] = {
        k: v for k, v in received.application_properties.items() if k != "retryAttempt"
    }
    properties["originalMessageId"] = original_id
    properties["verifyAttempt"] = attempt
    properties["deletedAt"] = _iso(deleted_at)
    return OutgoingMessage(
        body=received.body,
        message_id=f"{original_id}:verify{attempt}",
        content_type=received.content_type,
        correlation_id=received.correlation_id,
        subject=received.subject,
        application_properties=properties,
        scheduled_enqueue_time_utc=now + timedelta(seconds=delay),
    )


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def _said(answer: Answer) -> str:
    if isinstance(answer, BatchTransportError):
        return f"no answer ({answer.kind}: {answer})"
    if isinstance(answer, TokenUnavailableError):
        return f"no token from the managed identity endpoint ({answer})"
    said = f"HTTP {answer.status}"
    if answer.error is not None:
        text = (answer.error.message.value or "") if answer.error.message else ""
        said += f" {answer.error.code}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    elif answer.raw_body:
        said += f" with a body that is not Batch's error JSON: {answer.raw_body}"
    return said


def describe_stuck(job_id: str, answer: Answer, *, deleted_at: datetime, now: datetime) -> str:
    """One line an operator can act on: how long, the job's state and since when, or Batch's answer."""
    since = _duration((now - deleted_at).total_seconds())
    job = answer.job if isinstance(answer, BatchResponse) and answer.ok else None
    if job is not None:
        state = job.state or "unknown"
        changed = f" since {_iso(job.state_transition_time)}" if job.state_transition_time else ""
        head = f"Job {job_id} is still {state}{changed}, {since} after its deletion was accepted"
        if state == "deleting":
            hint = "its tasks may not terminate: check the pool's nodes, or replay with force."
        else:
            hint = "Batch did not delete it: check who changed it, then replay (with force if needed)."
    elif isinstance(answer, BatchResponse) and answer.status in (401, 403):
        head = f"Job {job_id}: Batch refused to show it {since} after its deletion ({_said(answer)})"
        hint = "check that the function's identity may read jobs on the account (Azure Batch Job Submitter)."
    else:
        head = f"Job {job_id}: not confirmed gone {since} after its deletion; last answer: {_said(answer)}"
        hint = "check the job in the portal; if it is still there, replay with force."
    return redact(" ".join(f"{head}; {hint}".split()))


class Budget(Protocol):
    @property
    def ends(self) -> float: ...
    @property
    def batch_ends(self) -> float: ...
    @property
    def min_attempt(self) -> float: ...


@dataclass
class Verifier:
    """Processes verification messages with the processor's own tools (see `Processor`)."""

    batch_client: Callable[[str], BatchClient]
    token: Callable[[], Awaitable[str]] | None
    sender: Callable[[], Sender]
    sleep: Callable[[float], Awaitable[None]]
    monotonic: Callable[[], float]
    now: Callable[[], datetime]
    rand: Callable[[], float]
    policy: QuickRetryPolicy
    deletion_queue: str
    dead_letter_queue: str
    after: float
    timeout: float

    async def schedule_first(self, received: Received, budget: Budget) -> None:
        """After `Deleted` / `AlreadyDeleting`: verification 1, `after` seconds from now."""
        now = self.now()
        message = verification_message(
            received=received, attempt=1, deleted_at=now, delay=self.after, now=now
        )
        await self._send(self.deletion_queue, message, budget)

    async def _send(self, queue: str, message: OutgoingMessage, budget: Budget) -> None:
        """Send, with whatever time the invocation has left; raises if that is not enough."""
        await self.sender().send(queue, message, within=budget.ends - self.monotonic())

    async def verify(
        self,
        received: Received,
        *,
        request: DeletionRequest,
        endpoint: str,
        result: Result,
        started: float,
        budget: Budget,
    ) -> None:
        """Look (never delete), decide, then complete, look again later, or record `DeletionStuck`."""
        attempt = verify_attempt(received)
        since = deleted_at(received, self.now())
        client = self.batch_client(endpoint)
        retries = 0
        while True:
            answer = await self._look(client, request, result, budget)
            result.note(answer)
            finding = find(answer, since)
            verdict = verify_verdict(finding, now=self.now(), deleted_at=since, timeout=self.timeout)
            if verdict.action is not Action.RETRY:
                break
            retry_after = answer.retry_after if isinstance(answer, BatchResponse) else None
            moment = self.monotonic()
            delay = self.policy.next_delay(retries, moment - started, retry_after, self.rand())
            if delay is None or moment + delay + budget.min_attempt > budget.batch_ends:
                verdict = _LOOK_AGAIN
                break
            await self.sleep(delay)
            retries += 1
        result.outcome = verdict.outcome
        now = self.now()
        if verdict.action is Action.COMPLETE:
            return
        if verdict.outcome is Outcome.DELETION_STUCK:
            record = failure_record(
                reason=Outcome.DELETION_STUCK,
                description=describe_stuck(request.job_id, answer, deleted_at=since, now=now),
                received=received,
                now=now,
                job_id=request.job_id,
                account=request.account,
                attempts=result.attempts,
                answer=answer,
                client_request_id=request.client_request_id,
            )
            await self._send(self.dead_letter_queue, record, budget)
            return
        wait = next_verify_delay(attempt, after=self.after, now=now, deleted_at=since, timeout=self.timeout)
        told = answer.retry_after if isinstance(answer, BatchResponse) else None
        message = verification_message(
            received=received, attempt=attempt + 1, deleted_at=since, delay=max(wait, told or 0.0), now=now
        )
        await self._send(self.deletion_queue, message, budget)

    async def _look(
        self, client: BatchClient, request: DeletionRequest, result: Result, budget: Budget
    ) -> Answer:
        """One Get Job (after a token), cut off where the invocation's Batch time ends."""
        return await bounded_attempt(
            functools.partial(client.get_job, request.job_id, client_request_id=request.client_request_id),
            token=self.token,
            left=budget.batch_ends - self.monotonic(),
            result=result,
        )
