"""What a deployed app exports through OpenTelemetry (contract section 7), and nothing when it is off.

The Python worker forwards a log record to the Functions host as its message text only, so `extra=`
fields never become custom dimensions (azure-functions-python-worker, `dispatcher.py` `on_logging`). The
supported way is OpenTelemetry ("Use OpenTelemetry with Azure Functions", Python pivot): host.json
`"telemetryMode": "OpenTelemetry"`, the app setting `PYTHON_ENABLE_OPENTELEMETRY=true` (the worker then
attaches the host's trace context to each invocation: worker `_handle__invocation_request` ->
`configure_opentelemetry`), and an exporter in the app. The worker's own automatic set-up
(`PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`) calls `configure_azure_monitor()` without a credential,
which Application Insights with local auth off refuses; so the app builds its exporters itself, with the
managed identity (`credential=`, documented for `AzureMonitor*Exporter`).

Exporter parts, not the distro: `azure-monitor-opentelemetry-exporter` + `opentelemetry-sdk` are what the
distro builds on; the distro adds instrumentations (requests, urllib, Django, ...) this app has no use for,
and their import cost (bench section 4).

What is exported, per message: a CONSUMER span (App Insights `requests`) that continues the producer's
W3C trace context (`traceparent`, or `Diagnostic-Id`, the application properties azure-servicebus writes:
`azure/servicebus/_common/tracing.py`), with the outcome; a CLIENT span (`dependencies`) per Batch request;
the per-message record as a log record (`traces`) whose attributes are the record's fields; a counter of
outcomes by reason and account and a histogram of Batch latency (`customMetrics`). Nothing is sampled: the
tracer samples every span whatever the producer's flag says, logs are never sampled, and none of this goes
through the host's `samplingSettings` (the worker exports it directly).

Off (no `APPLICATIONINSIGHTS_CONNECTION_STRING`, no OpenTelemetry SDK installed by the process): `OFF`,
whose methods do nothing and which imports nothing.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = [
    "OFF",
    "AnyTelemetry",
    "Dependency",
    "Invocation",
    "Telemetry",
    "build_providers",
    "from_settings",
    "trace_parent",
]

_SCOPE = "batch-job-deleter"
# OpenTelemetry severity numbers (logs data model): INFO 9, WARN 13, ERROR 17, FATAL 21.
_SEVERITY = {logging.DEBUG: 5, logging.INFO: 9, logging.WARNING: 13, logging.ERROR: 17, logging.CRITICAL: 21}


def trace_parent(properties: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The producer's W3C ``traceparent`` (and ``tracestate``) from a message's application properties:
    azure-servicebus writes the same value as ``Diagnostic-Id`` and ``traceparent``; older producers only
    the first."""
    value = properties.get("traceparent") or properties.get("Diagnostic-Id")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not value:
        return None
    state = properties.get("tracestate")
    if isinstance(state, bytes):
        state = state.decode("ascii", "replace")
    return value, state if isinstance(state, str) else None


class Dependency:
    """One Batch request's CLIENT span and latency; `end()` once, with the answer or the failure."""

    __slots__ = ("_method", "_span", "_started", "_telemetry")

    def __init__(self, telemetry: Telemetry, span: Span, method: str) -> None:
        self._telemetry, self._span, self._method = telemetry, span, method
        self._started = time.perf_counter()

    def end(self, status: int | None, request_id: str | None, error: str | None = None) -> None:
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        span, labels = self._span, {"http.request.method": self._method}
        attributes: dict[str, Any] = {}
        if status is not None:
            attributes["http.response.status_code"] = status
            labels["http.response.status_code"] = str(status)
        if request_id is not None:
            attributes["batch.request_id"] = request_id
        if error is not None:
            attributes["error.type"] = labels["error.type"] = error
        span.set_attributes(attributes)  # one call: the SDK checks every value it is given
        if error is not None or (status is not None and status >= 400):
            span.set_status(self._telemetry._error, error)
        span.end()
        self._telemetry._latency.record(elapsed_ms, labels)


class Invocation:
    """One message's span; `finish()` adds the outcome and emits the record, the counter and the span's
    status (an ERROR-level record is a failed request in Application Insights)."""

    __slots__ = ("_span", "_telemetry")

    def __init__(self, telemetry: Telemetry, span: Span) -> None:
        self._telemetry, self._span = telemetry, span

    def finish(self, level: int, text: str, fields: Mapping[str, Any]) -> None:
        telemetry, span = self._telemetry, self._span
        attributes = {name: value for name, value in fields.items() if value is not None}
        outcome = str(fields.get("outcome"))
        # The span carries what a `requests` query filters on; the record carries every field, in the
        # same operation (attributes are checked value by value: each one costs).
        span.set_attributes({"outcome": outcome, "jobId": attributes.get("jobId", "")})
        if level >= logging.ERROR:
            span.set_status(telemetry._error, outcome)
        # Emitted while the span is current: the record carries its trace and span ids (operation_Id).
        telemetry._logger.emit(
            severity_number=telemetry._severity(level),
            severity_text=logging.getLevelName(level),
            body=text,
            attributes=attributes,
        )
        account = telemetry.account_label(fields.get("account"))
        telemetry._outcomes.add(1, {"outcome": outcome, "account": account})


class Telemetry:
    """Spans, the per-message record and metrics, through the given OpenTelemetry providers."""

    enabled = True

    def __init__(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        meter_provider: MeterProvider,
        *,
        accounts: Collection[str] = (),
        queue: str | None = None,
    ) -> None:
        from opentelemetry._logs import SeverityNumber  # noqa: PLC0415 - only when telemetry is on
        from opentelemetry.trace import SpanKind, StatusCode  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self._kind = SpanKind
        self._error = StatusCode.ERROR
        self._severities = {level: SeverityNumber(number) for level, number in _SEVERITY.items()}
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = tracer_provider.get_tracer(_SCOPE)
        self._logger = logger_provider.get_logger(_SCOPE)
        meter = meter_provider.get_meter(_SCOPE)
        self._outcomes = meter.create_counter(
            "deletion.outcomes", unit="{message}", description="Messages processed, by outcome and account"
        )
        self._latency = meter.create_histogram(
            "batch.request.duration", unit="ms", description="Batch requests, from send to answer"
        )
        self._accounts = frozenset(accounts)
        self._queue = queue

    def _severity(self, level: int) -> Any:
        return self._severities.get(level) or self._severities[logging.INFO]

    def account_label(self, account: object) -> str:
        """The account as a metric label: a listed name, ``default``, or ``unlisted`` (an invalid message's
        account is the producer's text: it must not make a new time series per message)."""
        if account is None:
            return "default"
        return account if isinstance(account, str) and account in self._accounts else "unlisted"

    @contextlib.contextmanager
    def invocation(self, message_id: str, properties: Mapping[str, Any]) -> Iterator[Invocation]:
        """The message's span, current while the body runs: a child of the producer's trace when the
        message carries one (linked to the host's invocation span), else of the host's."""
        from opentelemetry import context, trace  # noqa: PLC0415 - loaded already when on

        parent = None
        links = None
        producer = trace_parent(properties)
        if producer is not None:
            carrier = {"traceparent": producer[0]}
            if producer[1]:
                carrier["tracestate"] = producer[1]
            extracted = self._propagator.extract(carrier)
            if trace.get_current_span(extracted).get_span_context().is_valid:
                parent = extracted
                host = trace.get_current_span().get_span_context()
                links = [trace.Link(host)] if host.is_valid else None
        attributes: dict[str, Any] = {"messaging.system": "servicebus", "messaging.message.id": message_id}
        if self._queue is not None:
            attributes["messaging.destination.name"] = self._queue
        span = self._tracer.start_span(
            "delete_job process", context=parent, kind=self._kind.CONSUMER, attributes=attributes, links=links
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield Invocation(self, span)
        finally:
            context.detach(token)
            span.end()

    def dependency(self, method: str, url: object, host: str, client_request_id: str | None) -> Dependency:
        """A CLIENT span for one Batch request (a child of the current invocation's span). Only the
        method, the URL (endpoint, path, api-version and the message's options: no credential in it) and
        the request ids: never a header value that could carry a token."""
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": str(url),
            "server.address": host,
        }
        if client_request_id is not None:
            attributes["batch.client_request_id"] = client_request_id
        span = self._tracer.start_span(f"Batch {method}", kind=self._kind.CLIENT, attributes=attributes)
        return Dependency(self, span, method)


class _Off:
    """Telemetry that is not configured: every call does nothing (the hot path pays one method call)."""

    enabled = False

    @contextlib.contextmanager
    def invocation(self, message_id: str, properties: Mapping[str, Any]) -> Iterator[None]:
        yield None

    def dependency(self, method: str, url: object, host: str, client_request_id: str | None) -> None:
        return None


OFF = _Off()
AnyTelemetry = Telemetry | _Off


def from_settings(
    connection_string: str | None,
    *,
    client_id: str | None,
    accounts: Collection[str] = (),
    queue: str | None = None,
) -> AnyTelemetry:
    """The app's telemetry: Azure Monitor exporters authenticated with the managed identity when
    `APPLICATIONINSIGHTS_CONNECTION_STRING` is set; else the process's own OpenTelemetry SDK providers
    when something installed them (the local host's `--telemetry`, a test); else `OFF`."""
    if connection_string:
        tracer, logger, meter = _azure_monitor(connection_string, client_id)
        return Telemetry(tracer, logger, meter, accounts=accounts, queue=queue)
    installed = _installed_providers()
    if installed is None:
        return OFF
    return Telemetry(*installed, accounts=accounts, queue=queue)


def _installed_providers() -> tuple[TracerProvider, LoggerProvider, MeterProvider] | None:
    if "opentelemetry.sdk.trace" not in sys.modules:  # nobody set up an SDK: stay off, import nothing
        return None
    from opentelemetry import _logs, metrics, trace  # noqa: PLC0415
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider  # noqa: PLC0415

    tracer, logger, meter = (
        trace.get_tracer_provider(),
        _logs.get_logger_provider(),
        metrics.get_meter_provider(),
    )
    if not isinstance(tracer, SdkTracerProvider):
        return None
    return (
        tracer,
        logger if isinstance(logger, SdkLoggerProvider) else _logs.NoOpLoggerProvider(),
        meter if isinstance(meter, SdkMeterProvider) else metrics.NoOpMeterProvider(),
    )


def build_providers(
    span_exporter: Any, log_exporter: Any, *metric_readers: Any, batch: bool = True
) -> tuple[SdkTracerProvider, SdkLoggerProvider, SdkMeterProvider]:
    """SDK providers around the given exporters, as the deployed app uses them (the local host and the
    tests build theirs here too, with ``batch=False``: each item is exported as it ends)."""
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider  # noqa: PLC0415
    from opentelemetry.sdk._logs.export import (  # noqa: PLC0415
        BatchLogRecordProcessor,
        SimpleLogRecordProcessor,
    )
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON  # noqa: PLC0415

    resource = Resource.create({"service.name": _SCOPE})
    # ALWAYS_ON, not the default ParentBased: a producer whose traceparent says "not sampled" must not
    # make a failure disappear.
    tracer = SdkTracerProvider(resource=resource, sampler=ALWAYS_ON)
    tracer.add_span_processor((BatchSpanProcessor if batch else SimpleSpanProcessor)(span_exporter))
    logger = SdkLoggerProvider(resource=resource)
    log_processor = BatchLogRecordProcessor if batch else SimpleLogRecordProcessor
    logger.add_log_record_processor(log_processor(log_exporter))
    meter = SdkMeterProvider(metric_readers=list(metric_readers), resource=resource)
    return tracer, logger, meter


def _azure_monitor(
    connection_string: str, client_id: str | None
) -> tuple[TracerProvider, LoggerProvider, MeterProvider]:
    """Providers exporting to Application Insights with the managed identity's Entra token (the sync
    credential: the exporters send from their own background threads)."""
    from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - only when telemetry is on
    from azure.monitor.opentelemetry.exporter import (  # noqa: PLC0415
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415

    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    options: dict[str, Any] = {"connection_string": connection_string, "credential": credential}
    return build_providers(
        AzureMonitorTraceExporter(**options),
        AzureMonitorLogExporter(**options),
        PeriodicExportingMetricReader(AzureMonitorMetricExporter(**options)),
    )
