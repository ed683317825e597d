"""Telemetry through the local host: function_app under ``python -m emulators.host --telemetry FILE``
exports, for each outcome, the record as a log record with the fields as attributes, the invocation span
(in the producer's trace when the message carries one), a dependency span per Batch request and the
outcome counter: what Azure Monitor would receive (contract section 7). The canary watches all of it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from emulators import RunningProcess, start
from tests.conftest import BatchHandle, IdentityHandle
from tests.e2e.deployment import Deployment, queue_specs
from tests.polling import wait_for


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    with start(
        "emulators.servicebus", *queue_specs("tel", {"otel": "lockDuration=30,maxDeliveryCount=3"})
    ) as sb:
        yield sb


@pytest.fixture
def deployment(
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
) -> Iterator[Deployment]:
    run = Deployment("tel-otel", service_bus, batch_emulator, identity_endpoint, tmp_path, telemetry=True)
    try:
        yield run
    finally:
        run.close()


def counted(deployment: Deployment) -> dict[tuple[str, str], float]:
    """The outcome counter's latest cumulative values, by (outcome, account)."""
    values: dict[tuple[str, str], float] = {}
    for item in deployment.telemetry("metric"):
        for resource in item["resource_metrics"]:
            for scope in resource["scope_metrics"]:
                for metric in scope["metrics"]:
                    if metric["name"] == "deletion.outcomes":
                        for point in metric["data"]["data_points"]:
                            labels = point["attributes"]
                            values[(labels["outcome"], labels["account"])] = point["value"]
    return values


def test_each_outcome_is_exported_through_the_host(deployment: Deployment) -> None:
    """Deleted (with a producer's traceparent), PreconditionFailed and InvalidMessage: each has its
    record with the fields, its span with the outcome, its Batch span (none for the invalid one), and
    is counted."""
    deployment.batch.control.add_job("traced")
    deployment.batch.control.add_job("guarded")
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    deployment.send(
        {"jobId": "traced"}, application_properties={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )
    deployment.send({"jobId": "guarded", "ifMatch": '"stale"'})
    deployment.send({"jobId": "not a job id"})
    deployment.wait_outcomes(3)
    expected = {
        ("Deleted", "default"): 1,
        ("PreconditionFailed", "default"): 1,
        ("InvalidMessage", "default"): 1,
    }
    wait_for(lambda: counted(deployment) == expected or None, "the outcome counter", timeout=30)

    records = {r["attributes"]["outcome"]: r for r in deployment.telemetry("log record")}
    spans = deployment.telemetry("span")
    invocations = {s["attributes"]["outcome"]: s for s in spans if s["kind"] == "SpanKind.CONSUMER"}
    batch: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["kind"] == "SpanKind.CLIENT":
            batch.setdefault(span["parent_id"], []).append(span)
    assert set(records) == set(invocations) == {"Deleted", "PreconditionFailed", "InvalidMessage"}

    for outcome, record in records.items():
        span = invocations[outcome]
        assert record["span_id"] == span["context"]["span_id"]
        assert record["trace_id"] == span["context"]["trace_id"]
        fields = record["attributes"]
        assert {
            "outcome",
            "jobId",
            "messageId",
            "deliveryCount",
            "retryAttempt",
            "attempts",
            "durationMs",
        } <= set(fields)
        assert len(batch.get(span["context"]["span_id"], [])) == fields["attempts"]

    deleted = invocations["Deleted"]
    assert deleted["context"]["trace_id"] == f"0x{trace_id}"
    assert deleted["parent_id"] == f"0x{parent_id}"
    (request,) = batch[deleted["context"]["span_id"]]
    assert request["attributes"]["http.response.status_code"] == 202
    assert request["attributes"]["batch.request_id"] == records["Deleted"]["attributes"]["requestId"]
    assert records["PreconditionFailed"]["attributes"]["httpStatus"] == 412
    assert invocations["InvalidMessage"]["status"]["status_code"] == "ERROR"
    assert records["InvalidMessage"]["severity_text"] == "ERROR"


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver: keeps every request's path and protobuf body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [body for got, body in self.received if got == path]


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_host_sends_to_the_otlp_endpoint_the_standard_variable_names(
    service_bus: RunningProcess,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    tmp_path: Path,
    collector: Collector,
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: the invocation span, the record and the counter reach that
    collector over OTLP/HTTP (what `make demo` or a local Jaeger/Aspire dashboard would show)."""
    otlp = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    run = Deployment(
        "tel-otel", service_bus, batch_emulator, identity_endpoint, tmp_path, extra_settings=otlp
    )
    try:
        run.batch.control.add_job("collected")
        run.send({"jobId": "collected"})
        run.wait_outcomes(1)

        def spans() -> list[Any] | None:
            found = []
            for body in collector.bodies("/v1/traces"):
                request = ExportTraceServiceRequest.FromString(body)
                found += [s for r in request.resource_spans for sc in r.scope_spans for s in sc.spans]
            return found if len(found) >= 2 else None

        names = sorted(span.name for span in wait_for(spans, "spans at the collector", timeout=30))
        assert names == ["Batch DELETE", "delete_job process"]

        def outcomes() -> list[str] | None:
            found = []
            for body in collector.bodies("/v1/logs"):
                request = ExportLogsServiceRequest.FromString(body)
                for resource in request.resource_logs:
                    for scope in resource.scope_logs:
                        for record in scope.log_records:
                            found += [a.value.string_value for a in record.attributes if a.key == "outcome"]
            return found or None

        assert wait_for(outcomes, "the record at the collector", timeout=30) == ["Deleted"]

        def counter() -> bool | None:
            for body in collector.bodies("/v1/metrics"):
                request = ExportMetricsServiceRequest.FromString(body)
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        if any(m.name == "deletion.outcomes" for m in scope.metrics):
                            return True
            return None

        wait_for(counter, "the outcome counter at the collector", timeout=30)
    finally:
        run.close()
