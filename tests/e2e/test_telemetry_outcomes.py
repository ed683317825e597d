"""Every outcome's telemetry through the local host, in one run: function_app under
``python -m emulators.host --telemetry FILE`` processes messages that end in each `Outcome`, and what it
exported (the JSON lines of `emulators.telemetry`, the items Azure Monitor would receive) shows, per
invocation: the log record whose attributes are the record's fields, the CONSUMER span with the outcome
(in the producer's trace when the message carried a ``traceparent``), one CLIENT span per Batch request
(the verification's GET too) with Batch's ``request-id``, and the outcome counter. The secrets canary
(every token the identity endpoint issues carries it) must appear in none of it.

One host run serves every outcome (the suite's wall time), with times scaled down by settings: a
verification comes due 2.5 s after the deletion (VERIFY_DELETION_AFTER), so a job stuck in ``deleting``
is VerificationScheduled then and DeletionStuck at a later look, 6 s on (VERIFY_DELETION_TIMEOUT; margins
of 2 s and more, so that a loaded machine, 8 test workers on 2 cores, does not change the outcomes);
the one delayed retry comes 1 s on (RETRY_DELAYS). `Abandoned` needs a send that fails: the failure
queue refuses its first transfer (a seeded ``rejectSendRate``: the Service Bus emulator answers as a full
queue, QuotaExceeded), so the first failure record's invocation raises, the message comes back and its
second delivery's record goes through.

OTEL_TRACES_SAMPLER=always_on: successful invocations are exported whatever the default sampling is, so
each outcome's items are all there; what sampling leaves out is for tests of sampling.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage

from emulators import RunningProcess, start
from emulators.canary import current
from tests.conftest import BatchHandle, IdentityHandle
from tests.e2e.deployment import Deployment, queue_specs
from tests.polling import wait_for

# The first transfer to the failure queue is refused, the next eleven are taken: with seed 72, Python's
# random.Random draws one value below 0.3 and then eleven above it (one draw per transfer, _entity.py).
FAILED_QUEUE_FAULT = "rejectSendRate=0.3,rejectSendSeed=72"
SETTINGS = {
    "OTEL_TRACES_SAMPLER": "always_on",
    "VERIFY_DELETION_AFTER": "2.5",
    "VERIFY_DELETION_TIMEOUT": "6",
    "RETRY_DELAYS": "1",
}
CLIENT_REQUEST_ID = "6f1c2a9e-54d3-4b8e-9a07-3c2d1e0f9b11"  # tel-deleted's producer names its requests
VERIFICATION = frozenset({"DeletionConfirmed", "Recreated", "VerificationScheduled", "DeletionStuck"})
# Batch's answer, per outcome (the last one, when an invocation tried more than once).
STATUS = {
    "Deleted": 202,
    "AlreadyDeleted": 404,
    "AlreadyDeleting": 409,
    "PreconditionFailed": 412,
    "BatchRejected": 401,
    "InvalidMessage": None,
    "RetryScheduled": 503,
    "RetriesExhausted": 503,
    "DeletionConfirmed": 404,
    "Recreated": 200,
    "VerificationScheduled": 200,
    "DeletionStuck": 200,
}
# The outcomes whose failure record goes to the failure queue (one of them is refused once).
RECORDED = frozenset(
    {"PreconditionFailed", "BatchRejected", "InvalidMessage", "RetriesExhausted", "DeletionStuck"}
)
# The messages sent, and whether their producer traced them: "sdk" (as azure-servicebus writes the
# context today), "old" (Diagnostic-Id only, as older producers do) or None.
MESSAGES: list[tuple[dict[str, str], str | None]] = [
    ({"jobId": "tel-deleted", "clientRequestId": CLIENT_REQUEST_ID}, "sdk"),
    ({"jobId": "tel-stuck"}, "sdk"),
    ({"jobId": "tel-busy"}, "old"),
    ({"jobId": "tel-guarded", "ifMatch": '"stale"'}, "sdk"),
    ({"jobId": "tel-gone"}, None),
    ({"jobId": "tel-recreated"}, None),
    ({"jobId": "tel-refused"}, None),
    ({"jobId": "not a job id"}, None),
]
# What each request ends with; the outcomes on the way (Deleted, RetryScheduled, ...) come before.
FINAL = {
    "tel-deleted": "DeletionConfirmed",
    "tel-gone": "AlreadyDeleted",
    "tel-stuck": "DeletionStuck",
    "tel-recreated": "Recreated",
    "tel-guarded": "PreconditionFailed",
    "tel-refused": "BatchRejected",
    "not a job id": "InvalidMessage",
    "tel-busy": "RetriesExhausted",
}


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    specs = queue_specs(
        "telall",
        {"run": "lockDuration=30,maxDeliveryCount=3"},
        failed_options={"run": FAILED_QUEUE_FAULT},
    )
    with start("emulators.servicebus", *specs) as process:
        yield process


@pytest.fixture
def deployment(
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
) -> Iterator[Deployment]:
    run = Deployment(
        "telall-run",
        service_bus,
        batch_emulator,
        identity_endpoint,
        tmp_path,
        extra_settings=SETTINGS,
        telemetry=True,
    )
    try:
        yield run
    finally:
        run.close()


def sdk_trace_context(
    number: int, *, diagnostic_id_only: bool = False
) -> tuple[str, str, dict[str | bytes, Any]]:
    """A producer's W3C context as azure-servicebus writes it on a message it sends inside a span
    (azure/servicebus/_common/tracing.py, `trace_message`): the same ``traceparent`` value under
    ``Diagnostic-Id`` and ``traceparent`` (older producers: ``Diagnostic-Id`` only). Its trace id and
    span id, and the application properties."""
    trace_id, span_id = f"{number:032x}", f"{number:016x}"
    value = f"00-{trace_id}-{span_id}-01"
    properties: dict[str | bytes, Any] = {"Diagnostic-Id": value}
    if not diagnostic_id_only:
        properties["traceparent"] = value
    return trace_id, span_id, properties


def produce_every_outcome(deployment: Deployment) -> dict[str, tuple[str, str]]:
    """Seed Batch, send the messages, recreate one deleted job; the producers' (trace id, span id) by
    job. Returns once every request has its final outcome and Abandoned has happened."""
    batch = deployment.batch.control
    batch.configure(deleteDelayMs=0)  # a deletion Batch accepts is over at once: verification finds 404
    batch.add_jobs(["tel-deleted", "tel-recreated", "tel-guarded", "tel-refused", "tel-busy"])
    batch.add_job("tel-stuck", state="deleting", deleteStuck=True)  # 409, then `deleting` for good
    batch.add_fault(match={"jobId": "tel-refused"}, status=401, code="AuthenticationFailed", times=None)
    batch.add_fault(match={"jobId": "tel-busy"}, status=503, code="ServerBusy", times=None)

    traced: dict[str, tuple[str, str]] = {}
    messages = []
    for number, (body, context) in enumerate(MESSAGES, start=1):
        properties: dict[str | bytes, Any] | None = None
        if context is not None:
            trace_id, span_id, properties = sdk_trace_context(number, diagnostic_id_only=context == "old")
            traced[body["jobId"]] = (trace_id, span_id)
        messages.append(
            ServiceBusMessage(
                json.dumps(body),
                message_id=str(uuid.uuid4()),
                content_type="application/json",
                application_properties=properties,
            )
        )
    with deployment.client.get_queue_sender(deployment.queue) as sender:
        sender.send_messages(messages)  # one batch: a sender per message would cost a link each

    # Someone creates a job with the same id once Batch has deleted it, before the verification looks
    # (VERIFY_DELETION_AFTER after `deletedAt`). Its creationTime is set a few seconds on: the host takes
    # `deletedAt` after the 202, which a slow host may do after this poll saw the job gone; in Azure the
    # new job's creationTime is simply later than that.
    wait_for(lambda: batch.get_job("tel-recreated") is None, "tel-recreated's deletion")
    later = datetime.now(UTC) + timedelta(seconds=5)
    batch.add_job("tel-recreated", creationTime=later.isoformat())

    def everything() -> bool:
        outcomes = deployment.outcomes()
        final = {(o["jobId"], o["outcome"]) for o in outcomes}
        abandoned = any(o["outcome"] == "Abandoned" for o in outcomes)
        return abandoned and set(FINAL.items()) <= final and deployment.settled()

    wait_for(everything, "every request's final outcome", timeout=60)
    return traced


def exported_until_complete(deployment: Deployment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The exported log records and spans, once there is one record and one invocation span per log
    line of the function (each item is exported as it ends: a poll may come just before one)."""
    expected = sorted((o["messageId"], o["deliveryCount"]) for o in deployment.outcomes())

    def complete() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        records = deployment.telemetry("log record")
        spans = deployment.telemetry("span")
        keys = sorted((r["attributes"]["messageId"], r["attributes"]["deliveryCount"]) for r in records)
        invocations = [s for s in spans if s["kind"] == "SpanKind.CONSUMER"]
        return (records, spans) if keys == expected and len(invocations) == len(expected) else None

    return wait_for(complete, "a record and a span per invocation")


def metric_points(deployment: Deployment, name: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    """The latest data point of metric `name` per label set (the reader exports cumulative values)."""
    points: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for item in deployment.telemetry("metric"):
        for resource in item["resource_metrics"]:
            for scope in resource["scope_metrics"]:
                for metric in scope["metrics"]:
                    if metric["name"] == name:
                        for point in metric["data"]["data_points"]:
                            points[tuple(sorted(point["attributes"].items()))] = point
    return points


def test_every_outcome_is_exported_through_the_host(deployment: Deployment) -> None:
    """For each outcome: its record's fields as log attributes (the same as the host's log line), its
    CONSUMER span with the outcome (the producer's trace continued, retry copies and verification
    messages included), a CLIENT span per Batch request (DELETE, or the verification's GET) that Batch
    really received, with its status and request-id; the counter counts every invocation by outcome."""
    traced = produce_every_outcome(deployment)
    lines = deployment.log_entries()
    exported_records, spans = exported_until_complete(deployment)

    # Every outcome of delete_job.decision.Outcome happened, each in at least one invocation.
    seen = Counter(entry["customDimensions"]["outcome"] for entry in lines)
    assert set(seen) == set(STATUS) | {"Abandoned"}, seen
    # The one refused record send: that invocation raised, and the message's next delivery recorded.
    (abandoned,) = [e["customDimensions"] for e in lines if e["customDimensions"]["outcome"] == "Abandoned"]
    again = [
        e["customDimensions"]["outcome"]
        for e in lines
        if (e["customDimensions"]["messageId"], e["customDimensions"]["deliveryCount"])
        == (abandoned["messageId"], abandoned["deliveryCount"] + 1)
    ]
    assert len(again) == 1, again
    assert again[0] in RECORDED, again

    records = {(r["attributes"]["messageId"], r["attributes"]["deliveryCount"]): r for r in exported_records}
    invocations = {s["context"]["span_id"]: s for s in spans if s["kind"] == "SpanKind.CONSUMER"}
    batch_spans: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["kind"] == "SpanKind.CLIENT":
            batch_spans.setdefault(span["parent_id"], []).append(span)
    # What Batch received: (client-request-id, method, status) of every request.
    received = {
        (r["headers"].get("client-request-id"), r["method"], r["status"])
        for r in deployment.batch.control.requests()
    }

    for line in lines:
        fields = line["customDimensions"]
        outcome, job = fields["outcome"], fields["jobId"]
        what = f"{outcome} of {fields['messageId']} (delivery {fields['deliveryCount']})"
        record = records[(fields["messageId"], fields["deliveryCount"])]

        # The log record: every field of the host's log line that has a value (OpenTelemetry attributes
        # cannot be null), the same text and level.
        assert record["attributes"] == {k: v for k, v in fields.items() if v is not None}, what
        assert {"outcome", "jobId", "messageId", "deliveryCount", "retryAttempt", "attempts"} <= set(
            record["attributes"]
        ), what
        assert record["body"] == line["message"], what
        assert record["severity_text"] == line["level"], what
        if outcome != "Abandoned":
            assert fields["httpStatus"] == STATUS[outcome], what

        # The invocation span, in whose context the record was emitted.
        span = invocations[record["span_id"]]
        assert record["trace_id"] == span["context"]["trace_id"], what
        assert span["name"] == "delete_job process", what
        assert span["attributes"]["outcome"] == outcome, what
        assert span["attributes"]["messaging.message.id"] == fields["messageId"], what
        assert (span["status"]["status_code"] == "ERROR") is (line["level"] == "ERROR"), what
        if job in traced:  # the message, its retry copies and its verification messages: one trace
            trace_id, parent_id = traced[job]
            assert span["context"]["trace_id"] == f"0x{trace_id}", what
            assert span["parent_id"] == f"0x{parent_id}", what
        else:
            assert span["context"]["trace_id"] not in {f"0x{t}" for t, _ in traced.values()}, what

        # Its Batch requests: one CLIENT span each, children of the invocation span, as Batch saw them.
        requests = batch_spans.get(span["context"]["span_id"], [])
        assert len(requests) == fields["attempts"], what
        verifying = ":verify" in fields["messageId"]  # <originalMessageId>:verify<N> (contract section 6)
        for request in requests:
            attributes = request["attributes"]
            assert request["name"] == f"Batch {attributes['http.request.method']}", what
            assert attributes["http.request.method"] == ("GET" if verifying else "DELETE"), what
            assert f"/jobs/{job}" in attributes["url.full"], what
            assert request["context"]["trace_id"] == span["context"]["trace_id"], what
            sent = (
                attributes["batch.client_request_id"],
                attributes["http.request.method"],
                attributes["http.response.status_code"],
            )
            assert sent in received, what
            assert not any("authorization" in key.lower() for key in attributes), what
        if requests:
            last = requests[-1]["attributes"]
            assert last["http.response.status_code"] == fields["httpStatus"], what
            assert last["batch.request_id"] == fields["requestId"], what
            assert last["batch.client_request_id"] == fields["clientRequestId"], what
        if outcome in VERIFICATION:
            assert verifying, what
        if job == "tel-deleted":  # the producer's clientRequestId, on the DELETE and on the GET
            assert fields["clientRequestId"] == CLIENT_REQUEST_ID, what

    # The outcome counter: every invocation, by outcome (no account in these messages: "default").
    expected = {(("account", "default"), ("outcome", outcome)): count for outcome, count in seen.items()}

    def counted() -> bool:
        points = metric_points(deployment, "deletion.outcomes")
        return {labels: point["value"] for labels, point in points.items()} == expected

    wait_for(counted, "the outcome counter")
    latency = metric_points(deployment, "batch.request.duration")
    assert sum(point["count"] for point in latency.values()) == sum(len(r) for r in batch_spans.values())

    # The canary (in every token the host used) is in none of the exported items; the host's exporter
    # checks each item as well and reports to the session's canary file (tests/canary.py).
    canary = current()
    assert canary is not None
    assert deployment.identity.control.stats()["byStatus"].get("200", 0) >= 1  # a token was issued
    authorizations = [r["headers"].get("authorization") for r in deployment.batch.control.requests()]
    assert set(authorizations) == {"Bearer REDACTED"}  # sent with each request (logged hidden)
    assert canary not in deployment.telemetry_file.read_text()
