"""Contract v2's edges end to end: function_app under the local host, with dependencies that misbehave the way
Azure's do for a while. Real processes: a Service Bus emulator of this module's own, the local host, the
session's Batch emulator and identity endpoint.

Times are scaled down with settings so that each test takes seconds: an identity outage of a minute against
RETRY_DELAYS 60,300,... becomes one of 6 s against RETRY_DELAYS 2,2,2,2,2 (the outage ends before the
schedule does, as a minute does before 60+300 s); a role assignment's ~10 minutes of 403 against the same
schedule becomes 3 s (each window counted from the first request it meets, so a slow start cannot use it
up); INVOCATION_DEADLINE 120 s against a 5 min functionTimeout becomes 3 s. What is checked
is what a user sees: every job deleted or one record per request, nothing dead-lettered, no invocation cut
off by anything but the function's own deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusSubQueue

from emulators import RunningProcess, start
from tests.conftest import BatchHandle, IdentityHandle
from tests.e2e.deployment import Deployment, queue_specs
from tests.polling import wait_for

QUEUES = {
    "held": "lockDuration=30,maxDeliveryCount=10",
    "stalled": "lockDuration=30,maxDeliveryCount=30",
    "identity": "lockDuration=30,maxDeliveryCount=3",
    "forbidden": "lockDuration=30,maxDeliveryCount=3",
}
# The stalled test's failure queue leaves that share of sends unanswered (seeded, so the run is repeatable).
FAILED_OPTIONS = {"stalled": "stallSendRate=0.4,rejectSendSeed=3"}
SETTINGS = {
    "held": {"INVOCATION_DEADLINE": "3", "RETRY_DELAYS": "1,1"},
    "stalled": {"INVOCATION_DEADLINE": "3"},
    "identity": {"RETRY_DELAYS": "2,2,2,2,2", "QUICK_RETRY_DELAYS": "none"},
    "forbidden": {"RETRY_DELAYS": "2,2,2,2,2"},
}


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    with start(
        "emulators.servicebus", *queue_specs("edges", QUEUES, failed_options=FAILED_OPTIONS)
    ) as process:
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
        f"edges-{name}",
        service_bus,
        batch_emulator,
        identity_endpoint,
        tmp_path,
        extra_settings=SETTINGS[name],
    )
    try:
        yield run
    finally:
        run.close()


def on(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("deployment", [name], indirect=True)


def final_outcomes(deployment: Deployment, count: int, timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until `count` jobs have an outcome that ends their request; those outcomes by job."""

    def done() -> dict[str, dict[str, Any]] | None:
        final = {
            o["jobId"]: o
            for o in deployment.outcomes()
            if o["outcome"] not in ("RetryScheduled", "Abandoned")
        }
        return final if len(final) >= count else None

    return wait_for(done, f"{count} final outcomes", timeout)


def nothing_dead_lettered(deployment: Deployment) -> bool:
    return deployment.peek(deployment.queue, ServiceBusSubQueue.DEAD_LETTER) == []


def abandon_causes(deployment: Deployment) -> set[str]:
    """Why invocations raised, from the log text ("Abandoned: ...; <Type>: <message>")."""
    return {
        entry["message"].partition("; ")[2].split(":")[0]
        for entry in deployment.log_entries()
        if entry["customDimensions"]["outcome"] == "Abandoned"
    }


@on("held")
def test_batch_holding_the_connection_past_the_deadline(deployment: Deployment) -> None:
    """Batch holds the first DELETE of each job for a minute: each invocation gives up on it within its
    3 s deadline and schedules a retry copy instead of raising or running into the host's functionTimeout;
    the copies delete the jobs, with no record and nothing abandoned."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=60_000)
    jobs = [f"held-{n}" for n in range(4)]
    batch.add_jobs(jobs)
    for job in jobs:
        batch.add_fault(match={"jobId": job}, latencyMs=60_000, times=1)
    deployment.send_all(*({"jobId": job} for job in jobs))
    final = final_outcomes(deployment, len(jobs), timeout=60)
    assert {job: o["outcome"] for job, o in final.items()} == dict.fromkeys(jobs, "Deleted")
    outcomes = deployment.outcomes()
    assert sorted(o["outcome"] for o in outcomes) == ["Deleted"] * 4 + ["RetryScheduled"] * 4
    held = [o for o in outcomes if o["outcome"] == "RetryScheduled"]
    assert {(o["httpStatus"], o["attempts"]) for o in held} == {(None, 1)}  # cut off, no quick retry
    assert {deployment.job_state(job) for job in jobs} == {"deleting"}
    wait_for(deployment.settled, "settlement")
    assert deployment.stats().get("failed", 0) == 0  # no invocation raised or hit functionTimeout
    assert deployment.records() == []


@on("stalled")
def test_service_bus_stalling_sends(deployment: Deployment) -> None:
    """The failure queue leaves 40 % of sends unanswered: an invocation whose record send stalls raises
    SendTimeoutError within its 3 s deadline (never the host's timeout), the message comes back, and a later
    delivery's record goes through: one record per request, every protected job still there."""
    batch = deployment.batch.control
    jobs = [f"guarded-{n}" for n in range(6)]
    batch.add_jobs(jobs)
    ids = deployment.send_all(*({"jobId": job, "ifMatch": "0x8D0000000000042"} for job in jobs))
    final = final_outcomes(deployment, len(jobs), timeout=90)
    assert {o["outcome"] for o in final.values()} == {"PreconditionFailed"}
    abandoned = [o for o in deployment.outcomes() if o["outcome"] == "Abandoned"]
    assert abandoned, "no send stalled: the fault did not take effect"
    assert abandon_causes(deployment) == {"SendTimeoutError"}  # the function's own deadline, every time

    def six_records() -> list[dict[str, Any]] | None:
        found = deployment.records()
        return found if len(found) >= len(jobs) else None

    records = wait_for(six_records, "a record per request")
    assert sorted(r["originalMessage"]["messageId"] for r in records) == sorted(ids)
    assert {deployment.job_state(job) for job in jobs} == {"active"}
    assert nothing_dead_lettered(deployment)


@on("identity")
def test_identity_endpoint_down_for_a_while_then_back(deployment: Deployment) -> None:
    """The identity endpoint answers 503 for 6 s (a minute, scaled down; one token request per invocation,
    QUICK_RETRY_DELAYS none, takes the credential's ~3 s of bounded retries): invocations do not raise
    (which would spend the queue's max delivery count of 3 on redeliveries) but schedule retry copies; once
    the endpoint is back every job is deleted, nothing is dead-lettered, no record is written."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=60_000)
    jobs = [f"token-{n}" for n in range(5)]
    batch.add_jobs(jobs)
    deployment.identity.control.add_fault(status=503, times=None, for_seconds=6)
    deployment.send_all(*({"jobId": job} for job in jobs))
    final = final_outcomes(deployment, len(jobs), timeout=60)
    assert {job: o["outcome"] for job, o in final.items()} == dict.fromkeys(jobs, "Deleted")
    outcomes = deployment.outcomes()
    assert "Abandoned" not in {o["outcome"] for o in outcomes}
    assert {o["deliveryCount"] for o in outcomes} == {1}  # no redelivery spent
    assert any(o["outcome"] == "RetryScheduled" and o["attempts"] == 0 for o in outcomes)  # no token yet
    assert {deployment.job_state(job) for job in jobs} == {"deleting"}
    wait_for(deployment.nothing_left, "the queue to be empty")
    assert deployment.records() == []
    assert deployment.identity.control.stats()["byStatus"].get("503", 0) >= 1


@on("forbidden")
def test_403_until_the_role_assignment_applies_then_202(deployment: Deployment) -> None:
    """Batch answers 403 for the first 3 s (a role assignment still applying, scaled down): no quick
    retries, delayed retry copies until it answers 202; every job deleted, no record."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=60_000)
    jobs = [f"new-{n}" for n in range(3)]
    batch.add_jobs(jobs)
    batch.add_fault(status=403, code="AuthorizationFailure", times=None, forSeconds=3)
    deployment.send_all(*({"jobId": job} for job in jobs))
    final = final_outcomes(deployment, len(jobs), timeout=60)
    assert {job: o["outcome"] for job, o in final.items()} == dict.fromkeys(jobs, "Deleted")
    refused = [o for o in deployment.outcomes() if o["outcome"] == "RetryScheduled"]
    assert refused, "no 403 was met: the fault did not take effect"
    assert {(o["httpStatus"], o["attempts"]) for o in refused} == {(403, 1)}
    assert {deployment.job_state(job) for job in jobs} == {"deleting"}
    wait_for(deployment.nothing_left, "the queue to be empty")
    assert deployment.records() == []
