"""What a Batch answer means (contract v2 section 3, steps 2 and 4), checked for every status and error
code against a restatement of the contract's table written here, independently of `RULES`."""

from __future__ import annotations

from typing import Literal

import pytest

from delete_job.decision import Action, Outcome, Verdict, decide
from shared.batch_client import BatchResponse
from shared.batch_errors import BatchError, BatchErrorMessage, BatchTransportError
from shared.identity import TokenUnavailableError

CODES = [
    None,
    "JobNotFound",
    "JobBeingDeleted",
    "JobBeingTerminated",
    "ConditionNotMet",
    "ServerBusy",
    "Other",
]

DELETED = Verdict(Outcome.DELETED, Action.COMPLETE)
ALREADY_DELETED = Verdict(Outcome.ALREADY_DELETED, Action.COMPLETE)
ALREADY_DELETING = Verdict(Outcome.ALREADY_DELETING, Action.COMPLETE)
PRECONDITION_FAILED = Verdict(Outcome.PRECONDITION_FAILED, Action.RECORD)
TRANSIENT = Verdict(Outcome.RETRY_SCHEDULED, Action.RETRY)
DELAYED_ONLY = Verdict(Outcome.RETRY_SCHEDULED, Action.DELAY)
REJECTED = Verdict(Outcome.BATCH_REJECTED, Action.RECORD)


def contract(status: int, code: str | None) -> Verdict:  # noqa: PLR0911 - one return per row
    """The contract's table, row by row."""
    if 200 <= status <= 299:  # "202 (any 2xx)"
        return DELETED
    if status == 404 and code == "JobNotFound":
        return ALREADY_DELETED
    if status == 409 and code == "JobBeingDeleted":
        return ALREADY_DELETING
    if status == 412:  # "412 (any code)"
        return PRECONDITION_FAILED
    if status in (408, 429) or 500 <= status <= 599 or (status == 409 and code == "JobBeingTerminated"):
        return TRANSIENT
    if status == 403:  # "403 (any code)": no quick retries; delayed retries as above
        return DELAYED_ONLY
    # "3xx, 401, other 4xx (400, other 404/409, 413, ...)". 1xx is never a final answer and is not
    # in the table: refusing it (a record, no retry, never "Deleted") is the only safe reading.
    return REJECTED


def answer(status: int, code: str | None = None) -> BatchResponse:
    error = None
    if code is not None:
        error = BatchError(
            code=code,
            message=BatchErrorMessage(lang="en-US", value=f"{code} happened"),
            raw={"code": code, "message": {"lang": "en-US", "value": f"{code} happened"}, "values": []},
        )
    return BatchResponse(
        status=status,
        request_id="request-1",
        client_request_id="client-1",
        echoed_client_request_id="client-1",
        error=error,
        raw_body=None,
        retry_after=None,
        location=None,
    )


def test_every_status_and_code_follows_the_contract_table() -> None:
    """For every status 100-599 and every code, decide() gives the contract's outcome and action."""
    wrong = [
        f"{status} {code}: decide={decide(answer(status, code))}, contract={contract(status, code)}"
        for status in range(100, 600)
        for code in CODES
        if decide(answer(status, code)) != contract(status, code)
    ]
    assert wrong == []


@pytest.mark.parametrize("kind", ["timeout", "connection"])
def test_no_answer_is_retried(kind: Literal["timeout", "connection"]) -> None:
    """A timeout or a connection error (no answer at all) is transient: retried."""
    assert decide(BatchTransportError(kind, f"{kind} failed")) == TRANSIENT


def test_no_token_is_retried_like_a_503() -> None:
    """The identity endpoint failed (after the credential's own retries): quick retries, then delayed
    retries, as for a 503 (contract section 3, step 2)."""
    assert decide(TokenUnavailableError("ClientAuthenticationError: 500")) == decide(answer(503)) == TRANSIENT


@pytest.mark.parametrize(
    "code", [None, "AuthorizationFailure", "Forbidden", "InsufficientAccountPermissions"]
)
def test_403_with_any_code_takes_delayed_retries_only(code: str | None) -> None:
    """403: role assignments take minutes to apply, so no quick retries but the delayed schedule."""
    assert decide(answer(403, code)) == DELAYED_ONLY


@pytest.mark.parametrize(("status", "code"), [(200, None), (202, None), (204, None), (202, "JobNotFound")])
def test_success_is_deleted(status: int, code: str | None) -> None:
    """202 (and any 2xx) means the job is being deleted: the message completes."""
    assert decide(answer(status, code)) == DELETED


def test_job_not_found_is_already_deleted() -> None:
    """404 JobNotFound: the job is gone already, the message completes without a record."""
    assert decide(answer(404, "JobNotFound")) == ALREADY_DELETED


@pytest.mark.parametrize("code", [None, "Other", "ResourceNotFound", "JobBeingDeleted"])
def test_other_404_is_rejected(code: str | None) -> None:
    """A 404 with any other code (e.g. a wrong account URL) is a failure record, not a quiet success."""
    assert decide(answer(404, code)) == REJECTED


def test_job_being_deleted_is_already_deleting() -> None:
    """409 JobBeingDeleted: someone else's deletion is under way; the message completes."""
    assert decide(answer(409, "JobBeingDeleted")) == ALREADY_DELETING


def test_job_being_terminated_is_retried() -> None:
    """409 JobBeingTerminated is transient: the deletion is tried again later."""
    assert decide(answer(409, "JobBeingTerminated")) == TRANSIENT


@pytest.mark.parametrize("code", [None, "Other", "JobNotFound", "ConditionNotMet"])
def test_other_409_is_rejected(code: str | None) -> None:
    """A 409 with any other code gets a failure record."""
    assert decide(answer(409, code)) == REJECTED


@pytest.mark.parametrize("code", [None, "ConditionNotMet", "Other", "JobNotFound"])
def test_412_with_any_code_is_precondition_failed(code: str | None) -> None:
    """412 means a producer's precondition did not hold, whatever the code: a record, then complete."""
    assert decide(answer(412, code)) == PRECONDITION_FAILED


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (408, None),
        (429, None),
        (429, "TooManyRequests"),
        (500, None),
        (500, "InternalError"),
        (503, "ServerBusy"),
    ],
)
def test_throttling_and_server_errors_are_retried(status: int, code: str | None) -> None:
    """408, 429 and 5xx are transient: retried, never recorded as a rejection."""
    assert decide(answer(status, code)) == TRANSIENT


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_rejected(status: int) -> None:
    """A redirect is never followed (the token would go elsewhere): a failure record."""
    assert decide(answer(status)) == REJECTED


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, None), (400, "InvalidHeaderValue"), (413, "RequestBodyTooLarge")],
)
def test_client_errors_are_rejected(status: int, code: str | None) -> None:
    """401, 400, 413 are refusals that retrying will not fix: a failure record."""
    assert decide(answer(status, code)) == REJECTED
