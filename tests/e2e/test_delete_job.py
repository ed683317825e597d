"""The whole flow: a message on the deletion queue, the local Functions host running function_app, the
identity endpoint, the Batch emulator, and what ends up where. Real processes, real SDKs on the wire.

Each test gets its own deletion queue (dead letters forwarded to its own failure queue, duplicate
detection on), a host process with the test's settings, and reads back: the job's state, the message's
settlement, the failure record or retry copies, and the host's structured log records.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusSubQueue,
)

from emulators import RunningProcess, start
from emulators.servicebus import connection_string
from tests.conftest import BatchHandle, IdentityHandle
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
NAMES = [
    "deleted",
    "already",
    "flaky",
    "persistent",
    "precondition",
    "invalid",
    "rejected",
    "sendfail",
    "dup",
]


def queue_specs() -> list[str]:
    specs: list[str] = []
    for name in NAMES:
        failed = f"e2e-{name}-failed"
        forward = "" if name == "sendfail" else f",forwardDeadLetteredMessagesTo={failed}"
        specs += ["--queue", f"e2e-{name}:lockDuration=30,maxDeliveryCount=3{forward}"]
        specs += ["--queue", f"{failed}:duplicateDetectionWindow=600"]
    return specs


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    with start("emulators.servicebus", *queue_specs()) as process:
        yield process


class Deployment:
    """function_app under the local host, wired to the emulators, for one test."""

    def __init__(
        self, name: str, service_bus: RunningProcess, batch: BatchHandle, identity: IdentityHandle, tmp: Path
    ) -> None:
        self.batch = batch
        self.conn = connection_string(service_bus.url)
        self.queue = f"e2e-{name}"
        self.failed = f"e2e-{name}-failed"
        self.log_file = tmp / "host-log.jsonl"
        settings = tmp / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        env = {
            "BATCH_ENDPOINT": batch.url,
            "DELETION_QUEUE": self.queue,
            "DEAD_LETTER_QUEUE": "e2e-nowhere" if name == "sendfail" else self.failed,
            "ServiceBusConnection": self.conn,
            "IDENTITY_ENDPOINT": identity.url,
            "IDENTITY_HEADER": identity.secret,
            "RETRY_DELAYS": "1,1",
            "QUICK_RETRY_DELAYS": "0.05,0.05",
        }
        self.host = start(
            "emulators.host",
            "--app-dir",
            str(ROOT),
            "--settings",
            str(settings),
            "--log-file",
            str(self.log_file),
            env=env,
            ready_timeout=60,
        )
        self.client = ServiceBusClient.from_connection_string(self.conn)

    def send(self, body: dict[str, Any] | bytes, message_id: str | None = None, **kwargs: Any) -> str:
        message_id = message_id or str(uuid.uuid4())
        raw = body if isinstance(body, bytes) else json.dumps(body)
        with self.client.get_queue_sender(self.queue) as sender:
            sender.send_messages(
                ServiceBusMessage(raw, message_id=message_id, content_type="application/json", **kwargs)
            )
        return message_id

    def outcomes(self) -> list[dict[str, Any]]:
        """The function's structured log records (customDimensions), in order."""
        if not self.log_file.exists():
            return []
        entries = [json.loads(line) for line in self.log_file.read_text().splitlines() if line.strip()]
        return [e["customDimensions"] for e in entries if e["logger"] == "delete_job"]

    def wait_outcomes(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            found = self.outcomes()
            return found if len(found) >= count else None

        return wait_for(enough, f"{count} outcome(s)", timeout)

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.host.url}/_host/stats", timeout=5).json()
        return result

    def settled(self) -> bool:
        stats = self.stats()
        return stats.get("inFlight", 0) == 0 and stats.get("received", 0) == stats.get(
            "completed", 0
        ) + stats.get("abandoned", 0)

    def peek(
        self, queue: str, sub_queue: ServiceBusSubQueue | None = None
    ) -> list[ServiceBusReceivedMessage]:
        with self.client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
            return list(receiver.peek_messages(max_message_count=50))

    def records(self) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = [json.loads(b"".join(m.body)) for m in self.peek(self.failed)]
        return bodies

    def close(self) -> None:
        self.host.stop(timeout=30)
        self.client.close()


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
) -> Iterator[Deployment]:
    run = Deployment(request.param, service_bus, batch_emulator, identity_endpoint, tmp_path)
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
    assert failed.message_id == f"{message_id}:retry2:failed"
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


@on("rejected")
def test_403_is_batch_rejected(deployment: Deployment) -> None:
    """Batch's 403 AuthorizationFailure: a BatchRejected record that points at the RBAC role."""
    deployment.batch.control.add_job("locked")
    deployment.batch.control.add_fault(status=403, code="AuthorizationFailure", times=None)
    deployment.send({"jobId": "locked"})
    (record,) = wait_for(deployment.records, "the failure record")
    assert record["reason"] == "BatchRejected"
    assert record["batchError"]["code"] == "AuthorizationFailure"
    assert "Batch Job Submitter" in record["description"]


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
