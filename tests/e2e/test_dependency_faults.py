"""Faults in the function's own dependencies, end to end: the identity endpoint down, the Service Bus
connections dropped mid-run, Batch answering garbage. Real processes: a Service Bus emulator of this
module's own, the local Functions host running function_app, the session's identity endpoint and Batch
emulator. What is checked is what a user sees: jobs, outcomes, failure records, and queues left empty.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators import RunningProcess, start
from tests.conftest import BatchHandle, IdentityHandle
from tests.e2e.deployment import Deployment, queue_specs
from tests.polling import wait_for

# Per test: the deletion queue's lock duration and max delivery count. The identity test's max delivery
# count is small on purpose: an identity failure must not spend redeliveries (contract v2 section 3).
# The drop test's lost settlements come back when their locks expire: a short lock keeps it quick.
QUEUES = {
    "identity": "lockDuration=30,maxDeliveryCount=2",
    "drop": "lockDuration=3,maxDeliveryCount=10",
    "garbage": "lockDuration=30,maxDeliveryCount=3",
}
SETTLED_OUTCOMES = {"Deleted", "AlreadyDeleted", "AlreadyDeleting"}


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    with start("emulators.servicebus", *queue_specs("faults", QUEUES)) as process:
        yield process


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest,
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
) -> Iterator[Deployment]:
    run = Deployment(f"faults-{request.param}", service_bus, batch_emulator, identity_endpoint, tmp_path)
    try:
        yield run
    finally:
        run.close()


def on(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("deployment", [name], indirect=True)


@on("identity")
def test_identity_endpoint_refusing_for_good_ends_in_one_record(deployment: Deployment) -> None:
    """The identity endpoint refuses every token request (say, a wrong client id): no invocation raises, so
    no redelivery is spent and the broker dead-letters nothing; the delayed retries (RETRY_DELAYS 1,1) run
    out and one RetriesExhausted record names the identity failure. Batch is never called without a token.
    (An outage that ends: tests/e2e/test_host_edges.py.)"""
    deployment.batch.control.add_job("needs-token")
    deployment.identity.control.add_fault(times=None, status=400)
    (message_id,) = deployment.send_all({"jobId": "needs-token"})
    outcomes = deployment.wait_outcomes(3, timeout=30)
    assert [o["outcome"] for o in outcomes] == ["RetryScheduled", "RetryScheduled", "RetriesExhausted"]
    assert [o["messageId"] for o in outcomes] == [message_id, f"{message_id}:retry1", f"{message_id}:retry2"]
    assert {(o["deliveryCount"], o["attempts"]) for o in outcomes} == {(1, 0)}
    assert deployment.batch.control.requests() == []
    assert deployment.job_state("needs-token") == "active"
    (record,) = wait_for(deployment.records, "the failure record")
    assert (record["reason"], record["httpStatus"], record["attempts"]) == ("RetriesExhausted", None, 0)
    assert "no token from the managed identity endpoint" in record["description"]
    assert deployment.identity.secret not in record["description"]
    wait_for(deployment.nothing_left, "the message to be settled")


@on("drop")
def test_service_bus_connections_dropped_mid_run(deployment: Deployment) -> None:
    """SIGUSR1 resets every connection to Service Bus while 50 messages are in flight: the host's SDK
    reconnects, settlements that were lost come back when their locks expire and are processed again
    (a duplicate is harmless: AlreadyDeleting), every job ends deleted, and the host keeps working."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=60_000, latencyMs=300)  # jobs stay "deleting"; answers take a while
    jobs = [f"drop-{n}" for n in range(50)]
    batch.add_jobs(jobs)
    ids = deployment.send_all(*({"jobId": job} for job in jobs))
    wait_for(lambda: deployment.stats().get("inFlight", 0) >= 10, "messages in flight")
    os.kill(deployment.service_bus.process.pid, signal.SIGUSR1)
    dropped = wait_for(
        lambda: re.search(r"SIGUSR1: dropped (\d+) connection", deployment.service_bus.stderr_tail()),
        "the drop",
    )
    assert int(dropped.group(1)) >= 1  # the host's connection

    def all_settled() -> bool:
        settled = {o["messageId"] for o in deployment.outcomes() if o["outcome"] in SETTLED_OUTCOMES}
        return settled >= set(ids)

    wait_for(all_settled, "an outcome for every message", timeout=30)
    batch.add_job("after-the-drop")  # before the send: a host that is quick must find it
    (after,) = deployment.send_all({"jobId": "after-the-drop"})
    wait_for(lambda: any(o["messageId"] == after for o in deployment.outcomes()), "the later message")
    outcomes = deployment.outcomes()
    assert {o["outcome"] for o in outcomes} <= SETTLED_OUTCOMES  # nothing raised, nothing Abandoned
    assert [o["outcome"] for o in outcomes if o["messageId"] == after] == ["Deleted"]
    assert {job: deployment.job_state(job) for job in [*jobs, "after-the-drop"]} == dict.fromkeys(
        [*jobs, "after-the-drop"], "deleting"
    )
    wait_for(deployment.nothing_left, "the queue to be empty", timeout=15)
    assert deployment.records() == []


# Batch's 400 for a bad header, cut off inside its message: not JSON any more. The text runs past 4 KiB so
# that the record shows where it is cut.
_TRUNCATED_400 = (
    '{"odata.metadata":"https://acct.region.batch.azure.com/$metadata#Microsoft.Azure.Batch.Protocol.Entities'
    '.Container.errors/@Element","code":"InvalidHeaderValue","message":{"lang":"en-US","value":"The-value-'
)
_TRUNCATED_400 += "x" * (4096 - len(_TRUNCATED_400)) + "CUT-HERE" + "y" * 100


@on("garbage")
def test_batch_answering_garbage(deployment: Deployment) -> None:
    """Whatever Batch (or something in front of it) answers, the function decides by the status and never
    crashes or hangs: 2xx = Deleted whatever the body; 4xx = BatchRejected with the raw text (cut to 4 KiB)
    in the record's description and no batchError; 5xx or no HTTP answer at all = retried."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=60_000)
    faults: dict[str, dict[str, Any]] = {
        # a gateway's HTML error page, every time: quick retries, delayed retries, then a record
        "html-500": {"status": 500, "body": "html", "times": None},
        # the deletion happened, but the 202's body is not JSON (Batch sends none)
        "notjson-202": {
            "status": 202,
            "body": {"raw": "<<not json>>", "contentType": "application/json"},
            "apply": True,
        },
        "truncated-400": {
            "status": 400,
            "body": {"raw": _TRUNCATED_400, "contentType": "application/json;odata=minimalmetadata"},
            "times": None,
        },
        # an empty 503 once, then Batch's own answer
        "empty-503": {"status": 503, "body": "empty"},
        # not HTTP at all, twice (say, something else listening on the port), then Batch
        "not-http": {"raw": "SSH-2.0-OpenSSH_9.6\r\n", "times": 2},
        # Batch's status and headers, then the connection closes inside the body
        "half-202": {"raw": "HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{", "apply": True},
        "half-400": {
            "raw": "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            '{"code":"MissingRequiredHeader","mess',
            "times": None,
        },
    }
    for job, fault in faults.items():
        batch.add_job(job)
        batch.add_fault(match={"jobId": job}, **fault)
    sent = dict(zip(faults, deployment.send_all(*({"jobId": job} for job in faults)), strict=True))

    def finished() -> dict[str, dict[str, Any]] | None:
        final = {o["jobId"]: o for o in deployment.outcomes() if o["outcome"] != "RetryScheduled"}
        return final if len(final) == len(faults) else None

    final = wait_for(finished, "an outcome for every job", timeout=30)
    outcomes = deployment.outcomes()
    assert "Abandoned" not in {o["outcome"] for o in outcomes}  # the function never raised
    assert {job: (o["outcome"], o["attempts"]) for job, o in final.items()} == {
        "html-500": ("RetriesExhausted", 3),
        "notjson-202": ("Deleted", 1),
        "truncated-400": ("BatchRejected", 1),
        "empty-503": ("Deleted", 2),
        "not-http": ("Deleted", 3),
        "half-202": ("Deleted", 1),
        "half-400": ("BatchRejected", 1),
    }
    assert [o["messageId"] for o in outcomes if o["jobId"] == "html-500"] == [
        sent["html-500"],
        f"{sent['html-500']}:retry1",
        f"{sent['html-500']}:retry2",
    ]
    states = {job: deployment.job_state(job) for job in faults}
    assert states == {
        "html-500": "active",
        "notjson-202": "deleting",
        "truncated-400": "active",
        "empty-503": "deleting",
        "not-http": "deleting",
        "half-202": "deleting",
        "half-400": "active",
    }

    def three_records() -> list[dict[str, Any]] | None:
        found = deployment.records()
        return found if len(found) >= 3 else None

    records = {r["jobId"]: r for r in wait_for(three_records, "the failure records")}
    assert set(records) == {"html-500", "truncated-400", "half-400"}
    html = records["html-500"]
    assert (html["reason"], html["httpStatus"], html["batchError"]) == ("RetriesExhausted", 500, None)
    assert "<title>500 Internal Server Error</title>" in html["description"]
    rejected = records["truncated-400"]
    assert (rejected["reason"], rejected["httpStatus"], rejected["batchError"]) == (
        "BatchRejected",
        400,
        None,
    )
    assert _TRUNCATED_400[:4096] in rejected["description"]
    assert "CUT-HERE" not in rejected["description"]
    assert rejected["originalMessage"]["messageId"] == sent["truncated-400"]
    half = records["half-400"]
    assert (half["reason"], half["httpStatus"], half["batchError"]) == ("BatchRejected", 400, None)
    assert '{"code":"MissingRequiredHeader","mess' in half["description"]
    wait_for(deployment.nothing_left, "every message to be settled")
