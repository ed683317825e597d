"""OpenTelemetry where Azure Monitor is not: in-memory exporters for tests, a JSON-lines file (or stderr)
for the local host, and the secrets canary watching every span, log record and metric label.

The app's `shared.telemetry.from_settings` uses the process's SDK providers when something installed them
and no Application Insights connection string is set: `install()` is that something for the local host
(``python -m emulators.host --telemetry FILE``) and for the test session (tests/canary.py: so every
processor a test creates exports, and the canary watches all of it). Each exported
span and log record, and each metric point when it is read, is checked for the canary
(`emulators.canary`): a token in an attribute, a span name, a log body or a label is reported like one
in a log record, and fails the test session.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from emulators.canary import current, report
from shared.settings import SuccessSampling
from shared.telemetry import Telemetry, build_providers

__all__ = ["Captured", "capture", "install"]

Sink = Callable[[str, str], None]  # (kind, one item as JSON)


def _checked(name: str) -> Sink:
    """A sink that reports the canary in an item (never the item itself)."""
    canary = current()

    def check(kind: str, text: str) -> None:
        if canary and canary in text:
            report(f"{name}: an exported {kind} holds the canary")

    return check


class _Spans(SpanExporter):
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = sinks

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            text = span.to_json(indent=None)
            for sink in self._sinks:
                sink("span", text)
        return SpanExportResult.SUCCESS


class _Logs(LogRecordExporter):
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self._sinks = sinks

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        for record in batch:
            text = record.to_json(indent=None)
            for sink in self._sinks:
                sink("log record", text)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _Metrics(MetricExporter):
    def __init__(self, sinks: Sequence[Sink]) -> None:
        super().__init__()
        self._sinks = sinks

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: Any
    ) -> MetricExportResult:
        text = metrics_data.to_json(indent=None)
        for sink in self._sinks:
            sink("metric", text)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        pass


class _Fanout(SpanExporter):
    """Spans to several exporters (an in-memory one and the canary's)."""

    def __init__(self, *exporters: SpanExporter) -> None:
        self._exporters = exporters

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for exporter in self._exporters:
            exporter.export(spans)
        return SpanExportResult.SUCCESS


class _LogFanout(_Logs):
    def __init__(self, memory: InMemoryLogRecordExporter, checked: _Logs) -> None:
        super().__init__(())
        self._memory, self._checked = memory, checked

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self._memory.export(batch)
        return self._checked.export(batch)


class Captured:
    """Everything one processor exported, in memory: `spans()`, `logs()`, `metrics()` (a list of
    ``(name, attributes, value)`` points; a histogram's value is its count)."""

    def __init__(self, name: str) -> None:
        self._check = _checked(name)
        self.span_exporter = InMemorySpanExporter()
        self.log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.metric_reader = InMemoryMetricReader()
        self.providers = build_providers(
            _Fanout(self.span_exporter, _Spans([self._check])),
            _LogFanout(self.log_exporter, _Logs([self._check])),
            self.metric_reader,
            batch=False,
        )

    def telemetry(
        self,
        *,
        accounts: Sequence[str] = (),
        queue: str | None = None,
        sampling: SuccessSampling | None = None,
    ) -> Telemetry:
        return Telemetry(*self.providers, accounts=accounts, queue=queue, sampling=sampling)

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.span_exporter.get_finished_spans()

    def logs(self) -> list[ReadableLogRecord]:
        return list(self.log_exporter.get_finished_logs())

    def metrics(self) -> list[tuple[str, dict[str, Any], float]]:
        data = self.metric_reader.get_metrics_data()
        if data is None:
            return []
        self._check("metric", data.to_json(indent=None))
        points = []
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]  # a histogram point
                        points.append((metric.name, dict(point.attributes or {}), float(value)))
        return points


def capture(name: str = "telemetry") -> Captured:
    """In-memory providers for one test, watched by the canary."""
    return Captured(name)


def install(
    name: str, out: TextIO | Path | None = None, *, metric_interval_ms: int = 500, otlp: bool = False
) -> Callable[[], None]:
    """Make SDK providers the process's own (the app then exports through them): every item is checked
    for the canary and, with ``out``, written to it as one JSON line ``{"kind": ..., "item": {...}}``.
    With ``otlp``, also sent to the OTLP/HTTP endpoint that the standard ``OTEL_EXPORTER_OTLP_*``
    variables name (a local collector, Jaeger, Aspire's dashboard...), in batches."""
    sinks: list[Sink] = [_checked(name)]
    if out is not None:
        stream = out if not isinstance(out, Path) else out.open("a", encoding="utf-8", buffering=1)
        lock = threading.Lock()  # the metric reader writes from its own thread

        def write(kind: str, text: str) -> None:
            line = json.dumps({"kind": kind, "item": json.loads(text)})
            with lock:
                stream.write(line + "\n")
                stream.flush()

        sinks.append(write)
    readers: list[Any] = [
        PeriodicExportingMetricReader(_Metrics(sinks), export_interval_millis=metric_interval_ms)
    ]
    if otlp:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: PLC0415
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    tracer, logger, meter = build_providers(_Spans(sinks), _Logs(sinks), *readers, batch=False)
    if otlp:
        tracer.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        logger.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    trace.set_tracer_provider(tracer)
    _logs.set_logger_provider(logger)
    metrics.set_meter_provider(meter)

    def shutdown() -> None:  # the metric reader's last export: its labels are checked too
        for provider in (tracer, logger, meter):
            provider.shutdown()

    return shutdown
