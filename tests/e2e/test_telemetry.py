"""Telemetry through the local host to an OTLP endpoint: function_app under ``python -m emulators.host``
with the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` sends its spans, records and metrics to a collector.
What is exported for each outcome (``--telemetry FILE``, what Azure Monitor would receive, contract
section 7) is tests/e2e/test_telemetry_outcomes.py's.
"""

from __future__ import annotations

import threading
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
