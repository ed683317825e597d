"""The whole flow: a message on the deletion queue, the local Functions host running function_app, the
identity endpoint, the Batch emulator, and what ends up where. Real processes, real SDKs on the wire.

Each test gets its own deletion queue (dead letters forwarded to its own failure queue, duplicate
detection on), a host process with the test's settings, and reads back: the job's state, the message's
settlement, the failure record or retry copies, and the host's structured log records.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusSubQueue

from emulators import RunningProcess, start
from tests.conftest import BatchHandle, IdentityHandle
from tests.e2e.deployment import Deployment, queue_specs
from tests.polling import wait_for

NAMES = [
    "deleted",
    "already",
    "flaky",
    "persistent",
    "precondition",
    "invalid",
    "bytes",
    "rejected",
    "sendfail",
    "dup",
]
SENDFAIL = frozenset({"sendfail"})  # its failure queue does not exist, and the broker forwards nowhere


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    queues = queue_specs(
        "e2e", dict.fromkeys(NAMES, "lockDuration=30,maxDeliveryCount=3"), unforwarded=SENDFAIL
    )
    with start("emulators.servicebus", *queues) as process:
        yield process


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
) -> Iterator[Deployment]:
    name = request.param
    run = Deployment(
        f"e2e-{name}",
        service_bus,
        batch_emulator,
        identity_endpoint,
        tmp_path,
        dead_letter_queue="e2e-nowhere" if name in SENDFAIL else None,
    )
    try:
        yield run
    finally:
        run.close()


def on(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("deployment", [name], indirect=True)


@on("deleted")
def test_deleted(deployment: Deployment) -> None:
    """A valid message deletes the job; the message completes; no record; one Deleted log record."""
    deployment.batch.control.configure(deleteDelayMs=60_000)
    deployment.batch.control.add_job("nightly-42")
    message_id = deployment.send({"jobId": "nightly-42", "reason": "workflow 42 finished"})
    (outcome,) = deployment.wait_outcomes(1)
    assert outcome["outcome"] == "Deleted"
    assert (outcome["jobId"], outcome["messageId"], outcome["deliveryCount"]) == ("nightly-42", message_id, 1)
    assert outcome["httpStatus"] == 202
    job = deployment.batch.control.get_job("nightly-42")
    assert job is not None
    assert job["state"] == "deleting"
    wait_for(deployment.settled, "settlement")
    assert deployment.stats()["completed"] == 1
    assert deployment.peek(deployment.queue) == []
    assert deployment.records() == []


@on("already")
def test_already_deleted_and_already_deleting(deployment: Deployment) -> None:
    """A second message for a deleting job, and one for a missing job, complete without records."""
    deployment.batch.control.configure(deleteDelayMs=60_000)
    deployment.batch.control.add_job("twice", state="deleting")
    deployment.send({"jobId": "twice"})
    deployment.send({"jobId": "gone"})
    outcomes = deployment.wait_outcomes(2)
    assert sorted(o["outcome"] for o in outcomes) == ["AlreadyDeleted", "AlreadyDeleting"]
    wait_for(deployment.settled, "settlement")
    assert deployment.peek(deployment.queue) == []
    assert deployment.records() == []


@on("flaky")
def test_503_then_202_ends_deleted_without_record(deployment: Deployment) -> None:
    """Batch busy once, then fine: quick retries in the invocation, Deleted, no record, no copy."""
    deployment.batch.control.add_job("flaky")
    deployment.batch.control.add_fault(match={"jobId": "flaky"}, status=503, code="ServerBusy")
    deployment.send({"jobId": "flaky"})
    (outcome,) = deployment.wait_outcomes(1)
    assert (outcome["outcome"], outcome["attempts"]) == ("Deleted", 2)
    wait_for(deployment.settled, "settlement")
    assert deployment.peek(deployment.queue) == []
    assert deployment.records() == []
    statuses = [r["status"] for r in deployment.batch.control.requests()]
    assert statuses == [503, 202]


@on("persistent")
def test_persistent_503_schedules_copies_then_retries_exhausted(deployment: Deployment) -> None:
    """Always 503: delayed copies follow RETRY_DELAYS (1,1), then one RetriesExhausted record."""
    deployment.batch.control.add_job("busy")
    deployment.batch.control.add_fault(match={"jobId": "busy"}, status=503, code="ServerBusy", times=None)
    message_id = deployment.send({"jobId": "busy"}, message_id="persist-1", correlation_id="corr-1")
    outcomes = deployment.wait_outcomes(3, timeout=60)
    assert [o["outcome"] for o in outcomes] == ["RetryScheduled", "RetryScheduled", "RetriesExhausted"]
    assert [o["messageId"] for o in outcomes] == [message_id, f"{message_id}:retry1", f"{message_id}:retry2"]
    assert [o["retryAttempt"] for o in outcomes] == [0, 1, 2]
    wait_for(deployment.settled, "settlement")
    (record,) = wait_for(deployment.records, "the failure record")
    assert record["reason"] == "RetriesExhausted"
    assert (record["jobId"], record["retryAttempt"], record["attempts"]) == ("busy", 2, 3)
    assert record["httpStatus"] == 503
    assert record["batchError"]["code"] == "ServerBusy"
    assert record["originalMessage"]["messageId"] == f"{message_id}:retry2"
    assert record["originalMessage"]["applicationProperties"]["originalMessageId"] == message_id
    (failed,) = deployment.peek(deployment.failed)
    assert failed.correlation_id == "corr-1"
    assert failed.message_id == f"{message_id}:failed"  # named after the request
    job = deployment.batch.control.get_job("busy")
    assert job is not None
    assert job["state"] == "active"


@on("precondition")
def test_412_deletes_nothing_and_records(deployment: Deployment) -> None:
    """A stale If-Match protects the job: it stays active; a PreconditionFailed record explains why."""
    deployment.batch.control.add_job("protected")
    message_id = deployment.send({"jobId": "protected", "ifMatch": "0x8DEADBEEF"})
    (outcome,) = deployment.wait_outcomes(1)
    assert (outcome["outcome"], outcome["httpStatus"], outcome["batchErrorCode"]) == (
        "PreconditionFailed",
        412,
        "ConditionNotMet",
    )
    (record,) = wait_for(deployment.records, "the failure record")
    assert record["reason"] == "PreconditionFailed"
    assert record["originalMessage"]["messageId"] == message_id
    job = deployment.batch.control.get_job("protected")
    assert job is not None
    assert job["state"] == "active"
    wait_for(deployment.settled, "settlement")
    assert deployment.peek(deployment.queue) == []


@on("invalid")
def test_invalid_message_records_and_calls_nothing(deployment: Deployment) -> None:
    """A misspelt precondition is refused: InvalidMessage record, no request to Batch."""
    deployment.send({"jobId": "x", "ifmatch": "0x1"})
    (outcome,) = deployment.wait_outcomes(1)
    assert outcome["outcome"] == "InvalidMessage"
    (record,) = wait_for(deployment.records, "the failure record")
    assert "ifmatch" in record["description"]
    assert deployment.batch.control.requests() == []


@on("bytes")
def test_a_body_that_is_not_utf8_is_invalid_and_its_record_keeps_the_bytes(deployment: Deployment) -> None:
    """Latin-1 bytes inside a JSON string: the trigger binds the body as bytes (dataType binary), so they
    are not turned into U+FFFD on the way (which would make a valid request of them): InvalidMessage, the
    job untouched, and the record keeps the body exactly, as bodyBase64 (contract section 5)."""
    deployment.batch.control.add_job("latin1")
    body = '{"jobId": "latin1", "reason": "caf\u00e9"}'.encode("latin-1")
    message_id = deployment.send(body)
    (outcome,) = deployment.wait_outcomes(1)
    assert (outcome["outcome"], outcome["messageId"]) == ("InvalidMessage", message_id)
    (record,) = wait_for(deployment.records, "the failure record")
    assert "not UTF-8" in record["description"]
    assert base64.b64decode(record["originalMessage"]["bodyBase64"]) == body
    assert "body" not in record["originalMessage"]
    assert deployment.job_state("latin1") == "active"
    assert deployment.batch.control.requests() == []


@on("rejected")
def test_401_is_rejected_and_a_403_for_good_exhausts_the_delayed_retries(deployment: Deployment) -> None:
    """A 401 is a BatchRejected record at once; a 403 gets no quick retries but the delayed ones (a role
    assignment may still be applying) and, still 403 at the end of RETRY_DELAYS (1,1), one RetriesExhausted
    record with Batch's 403. Both records point at the RBAC role."""
    batch = deployment.batch.control
    batch.add_jobs(["unauthenticated", "locked"])
    batch.add_fault(match={"jobId": "unauthenticated"}, status=401, code="AuthenticationFailed", times=None)
    batch.add_fault(match={"jobId": "locked"}, status=403, code="AuthorizationFailure", times=None)
    deployment.send_all({"jobId": "unauthenticated"}, {"jobId": "locked"})

    def two_records() -> list[dict[str, Any]] | None:
        found = deployment.records()
        return found if len(found) >= 2 else None

    records = {r["jobId"]: r for r in wait_for(two_records, "the failure records")}
    assert (records["unauthenticated"]["reason"], records["unauthenticated"]["httpStatus"]) == (
        "BatchRejected",
        401,
    )
    locked = records["locked"]
    assert (locked["reason"], locked["httpStatus"], locked["batchError"]["code"]) == (
        "RetriesExhausted",
        403,
        "AuthorizationFailure",
    )
    assert all("Batch Job Submitter" in r["description"] for r in records.values())
    steps = [(o["outcome"], o["attempts"]) for o in deployment.outcomes() if o["jobId"] == "locked"]
    assert steps == [("RetryScheduled", 1), ("RetryScheduled", 1), ("RetriesExhausted", 1)]


@on("sendfail")
def test_failed_record_send_leaves_the_message_to_come_back(deployment: Deployment) -> None:
    """The failure queue is unreachable: the function raises, the message comes back (delivery count + 1)
    until the broker dead-letters it; it is never lost and the job is never deleted."""
    deployment.batch.control.add_job("keep")
    message_id = deployment.send({"jobId": "keep", "ifMatch": "stale"})
    dead = wait_for(
        lambda: deployment.peek(deployment.queue, ServiceBusSubQueue.DEAD_LETTER), "the broker's dead letter"
    )
    assert dead[0].message_id == message_id
    assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    outcomes = deployment.outcomes()
    assert [(o["outcome"], o["deliveryCount"]) for o in outcomes] == [
        ("Abandoned", 1),
        ("Abandoned", 2),
        ("Abandoned", 3),
    ]
    job = deployment.batch.control.get_job("keep")
    assert job is not None
    assert job["state"] == "active"


@on("dup")
def test_the_same_message_twice_gives_one_record(deployment: Deployment) -> None:
    """A duplicate of a failing message is processed twice, but duplicate detection keeps one record."""
    deployment.batch.control.add_job("guarded")
    for _ in range(2):
        deployment.send({"jobId": "guarded", "ifMatch": "stale"}, message_id="dup-1")
    outcomes = deployment.wait_outcomes(2)
    assert [o["outcome"] for o in outcomes] == ["PreconditionFailed", "PreconditionFailed"]
    wait_for(deployment.settled, "settlement")
    records = deployment.records()
    assert len(records) == 1
    assert records[0]["originalMessage"]["messageId"] == "dup-1"
