"""What a Batch answer means (contract section 3, step 4): one table, read top to bottom.

Pure: no I/O, no clock. `decide()` maps Batch's answer (or the lack of one) to an outcome and an action;
the processor carries the action out. Reading `RULES` tells the whole policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.batch_client import BatchResponse
from shared.batch_errors import BatchTransportError
from shared.identity import TokenUnavailableError

__all__ = ["NO_ANSWER", "NO_TOKEN", "RULES", "Action", "Answer", "Outcome", "Verdict", "decide"]

# What one attempt ends with: Batch's answer, no answer at all, or no token to ask with.
Answer = BatchResponse | BatchTransportError | TokenUnavailableError


class Outcome(StrEnum):
    DELETED = "Deleted"
    ALREADY_DELETED = "AlreadyDeleted"
    ALREADY_DELETING = "AlreadyDeleting"
    PRECONDITION_FAILED = "PreconditionFailed"
    BATCH_REJECTED = "BatchRejected"
    INVALID_MESSAGE = "InvalidMessage"
    RETRY_SCHEDULED = "RetryScheduled"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    # Verification (contract section 6; its table is delete_job/verification.py's VERIFY_RULES)
    DELETION_CONFIRMED = "DeletionConfirmed"
    RECREATED = "Recreated"
    VERIFICATION_SCHEDULED = "VerificationScheduled"
    DELETION_STUCK = "DeletionStuck"
    ABANDONED = "Abandoned"


class Action(StrEnum):
    COMPLETE = "complete"  # done: the message completes, nothing else is sent
    RECORD = "record"  # a failure record first, then the message completes
    RETRY = "retry"  # transient: quick retries, then a delayed retry copy (or RetriesExhausted)
    DELAY = (
        "delay"  # not now, maybe later: a delayed retry copy at once (or RetriesExhausted), no quick retries
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    action: Action


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches a status range (inclusive) and, when given, one Batch error code."""

    statuses: tuple[int, int]
    code: str | None
    verdict: Verdict

    def matches(self, status: int, code: str | None) -> bool:
        low, high = self.statuses
        return low <= status <= high and (self.code is None or self.code == code)


_DONE = Action.COMPLETE
_TRANSIENT = Verdict(Outcome.RETRY_SCHEDULED, Action.RETRY)
# Batch checks its data-plane RBAC per request, and a new role assignment takes up to ~10 minutes to apply
# (Functions docs, "Configure identity-based connections"): a 403 right after a deployment turns into a 202
# with the same token. Seconds of quick retries would not outlast that; the delayed schedule does.
_NOT_YET_AUTHORIZED = Verdict(Outcome.RETRY_SCHEDULED, Action.DELAY)

RULES: tuple[Rule, ...] = (
    Rule((200, 299), None, Verdict(Outcome.DELETED, _DONE)),
    Rule((404, 404), "JobNotFound", Verdict(Outcome.ALREADY_DELETED, _DONE)),
    Rule((409, 409), "JobBeingDeleted", Verdict(Outcome.ALREADY_DELETING, _DONE)),
    Rule((412, 412), None, Verdict(Outcome.PRECONDITION_FAILED, Action.RECORD)),
    Rule((408, 408), None, _TRANSIENT),
    Rule((429, 429), None, _TRANSIENT),
    Rule((500, 599), None, _TRANSIENT),
    Rule((409, 409), "JobBeingTerminated", _TRANSIENT),
    Rule((403, 403), None, _NOT_YET_AUTHORIZED),
    # Everything else: 3xx (never followed), 401, 400, other 404/409, 413, ...
    Rule((100, 999), None, Verdict(Outcome.BATCH_REJECTED, Action.RECORD)),
)

# No answer at all (connection refused or dropped, timeout, the invocation's deadline): transient.
NO_ANSWER = _TRANSIENT
# No token: the identity endpoint failed after the credential's own bounded retries (contract section 3,
# step 2): transient, handled like a 503.
NO_TOKEN = _TRANSIENT


def decide(answer: Answer) -> Verdict:
    """The verdict for one Batch answer, or for none."""
    if isinstance(answer, BatchTransportError):
        return NO_ANSWER
    if isinstance(answer, TokenUnavailableError):
        return NO_TOKEN
    for rule in RULES:
        if rule.matches(answer.status, answer.error_code):
            return rule.verdict
    return RULES[-1].verdict  # statuses outside 100-999 cannot come from HTTP; reject if they do
