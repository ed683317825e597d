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
outcomes by reason and account and a histogram of Batch latency (`customMetrics`). A failure is never
sampled: the spans are made when the invocation ends, from the times recorded while it ran, and only a
success (an outcome logged at INFO) may be left out, as `SuccessSampling` (OTEL_TRACES_SAMPLER) says;
the metrics count every message. None of this goes through the host's `samplingSettings` (the worker
exports it directly).

Off (no `APPLICATIONINSIGHTS_CONNECTION_STRING`, no OpenTelemetry SDK installed by the process): `OFF`,
whose methods do nothing and which imports nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from shared.settings import SuccessSampling
from shared.success_sampling import SuccessSampler
from shared.telemetry_providers import SCOPE as _SCOPE
from shared.telemetry_providers import azure_monitor_providers, build_providers, installed_providers

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

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

# The span attribute azure-monitor-opentelemetry-exporter turns into an envelope's sampleRate.
_SAMPLE_RATE_KEY = "_MS.sampleRate"
_CURRENT: ContextVar[Invocation | None] = ContextVar("batch_job_deleter_invocation", default=None)
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


class _Request:
    """One Batch request as it happened, turned into a CLIENT span only if its invocation is exported."""

    __slots__ = ("attributes", "ended", "error", "method", "started")

    def __init__(self, method: str, attributes: dict[str, Any], started: int) -> None:
        self.method, self.attributes, self.started = method, attributes, started
        self.ended = started
        self.error: str | None = None


class Dependency:
    """One Batch request's latency, and its CLIENT span; `end()` once, with the answer or the failure."""

    __slots__ = ("_invocation", "_request", "_started", "_telemetry")

    def __init__(self, telemetry: Telemetry, invocation: Invocation | None, request: _Request) -> None:
        self._telemetry, self._invocation, self._request = telemetry, invocation, request
        self._started = time.perf_counter()

    def end(self, status: int | None, request_id: str | None, error: str | None = None) -> None:
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        request = self._request
        request.ended = time.time_ns()
        labels = {"http.request.method": request.method}
        attributes = request.attributes
        if status is not None:
            attributes["http.response.status_code"] = status
            labels["http.response.status_code"] = str(status)
        if request_id is not None:
            attributes["batch.request_id"] = request_id
        if error is not None:
            attributes["error.type"] = labels["error.type"] = error
        if error is not None or (status is not None and status >= 400):
            request.error = error or str(status)
        self._telemetry._latency.record(elapsed_ms, labels)  # every request, sampled or not
        if self._invocation is not None:
            self._invocation._requests.append(request)
        else:  # outside an invocation (a tool, a test): exported at once
            self._telemetry._export_request(request, None, None)


class Invocation:
    """One message: its Batch requests are collected while it runs; `finish()` counts the outcome and
    decides whether the spans and the record are exported (always for a failure)."""

    __slots__ = ("_finished", "_links", "_parent", "_requests", "_started", "_telemetry")

    def __init__(self, telemetry: Telemetry, parent: Any, links: Any, started: int) -> None:
        self._telemetry, self._parent, self._links, self._started = telemetry, parent, links, started
        self._requests: list[_Request] = []
        self._finished: tuple[int, str, Mapping[str, Any], float] | None = None

    def finish(self, level: int, text: str, fields: Mapping[str, Any]) -> None:
        telemetry = self._telemetry
        outcome = str(fields.get("outcome"))
        account = telemetry.account_label(fields.get("account"))
        telemetry._outcomes.add(1, {"outcome": outcome, "account": account})  # every message
        percentage: float | None = 100.0
        if level < logging.WARNING:  # a success: Deleted, AlreadyDeleted, ..., DeletionConfirmed
            percentage = telemetry._sampler.keep()
        if percentage is not None:
            self._finished = (level, text, fields, percentage)


class Telemetry:
    """Spans, the per-message record and metrics, through the given OpenTelemetry providers.

    Spans are made when an invocation ends, with the times recorded while it ran: only then is the
    outcome known, and with it whether a success is sampled away. A sampled-away success costs two
    metric updates and a few clock readings; making and exporting its spans and record would cost about
    five times the whole path (bench section 1)."""

    enabled = True

    def __init__(
        self,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        meter_provider: MeterProvider,
        *,
        accounts: Collection[str] = (),
        queue: str | None = None,
        sampling: SuccessSampling | None = None,
    ) -> None:
        from opentelemetry import context, trace  # noqa: PLC0415 - only when telemetry is on
        from opentelemetry._logs import SeverityNumber  # noqa: PLC0415
        from opentelemetry.trace import SpanKind, StatusCode  # noqa: PLC0415
        from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
            TraceContextTextMapPropagator,
        )

        self._trace, self._context = trace, context
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
        self._sampler = SuccessSampler(sampling)

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
        """One message, current while the body runs. Its span is a child of the producer's trace when
        the message carries one (linked to the host's invocation span), else of the host's."""
        trace = self._trace
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
        if parent is None:
            parent = self._context.get_current()  # the host's invocation span, when it has one
        invocation = Invocation(self, parent, links, time.time_ns())
        token = _CURRENT.set(invocation)
        try:
            yield invocation
        finally:
            _CURRENT.reset(token)
            if invocation._finished is not None:
                self._export(invocation, message_id, invocation._finished)

    def dependency(
        self, method: str, url: object, server: tuple[str, str, int], client_request_id: str | None
    ) -> Dependency:
        """A Batch request, within the current invocation when there is one. Its span holds only the
        method, the URL (endpoint, path, api-version and the message's options: no credential in it) and
        the request ids: never a header value that could carry a token."""
        scheme, host, port = server
        # server.port and url.scheme as the HTTP client conventions ask: the exporter names the
        # dependency's target host:port unless the port is the scheme's default (without them,
        # "host:None"; azure-monitor-opentelemetry-exporter `export/trace/_utils.py`,
        # _get_target_and_path_for_http_dependency).
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": str(url),
            "url.scheme": scheme,
            "server.address": host,
            "server.port": port,
        }
        if client_request_id is not None:
            attributes["batch.client_request_id"] = client_request_id
        return Dependency(self, _CURRENT.get(), _Request(method, attributes, time.time_ns()))

    def _export(
        self, invocation: Invocation, message_id: str, finished: tuple[int, str, Mapping[str, Any], float]
    ) -> None:
        """The invocation's CONSUMER span (App Insights `requests`), its Batch requests' CLIENT spans
        (`dependencies`) and the record (`traces`, emitted in the span's context: same operation_Id)."""
        level, text, fields, percentage = finished
        outcome = str(fields.get("outcome"))
        attributes: dict[str, Any] = {
            "messaging.system": "servicebus",
            "messaging.message.id": message_id,
            "outcome": outcome,
            "jobId": fields.get("jobId") or "",
        }
        if self._queue is not None:
            attributes["messaging.destination.name"] = self._queue
        if percentage < 100.0:
            # The exporter copies this attribute to the envelope's sampleRate: Application Insights then
            # counts the item 100/percentage times (itemCount). azure-monitor-opentelemetry-exporter
            # `_constants.py` _SAMPLE_RATE_KEY, read in `export/trace/_exporter.py`.
            attributes[_SAMPLE_RATE_KEY] = percentage
        span = self._tracer.start_span(
            "delete_job process",
            context=invocation._parent,
            kind=self._kind.CONSUMER,
            attributes=attributes,
            links=invocation._links,
            start_time=invocation._started,
        )
        if level >= logging.ERROR:
            span.set_status(self._error, outcome)
        context = self._trace.set_span_in_context(span)
        for request in invocation._requests:
            self._export_request(request, context, percentage)
        self._logger.emit(
            context=context,
            severity_number=self._severity(level),
            severity_text=logging.getLevelName(level),
            body=text,
            attributes={name: value for name, value in fields.items() if value is not None},
        )
        span.end()

    def _export_request(self, request: _Request, context: Any, percentage: float | None) -> None:
        attributes = request.attributes
        if percentage is not None and percentage < 100.0:
            attributes[_SAMPLE_RATE_KEY] = percentage
        span = self._tracer.start_span(
            f"Batch {request.method}",
            context=context,
            kind=self._kind.CLIENT,
            attributes=attributes,
            start_time=request.started,
        )
        if request.error is not None:
            span.set_status(self._error, attributes.get("error.type"))
        span.end(end_time=request.ended)


class _Off:
    """Telemetry that is not configured: every call does nothing (the hot path pays one method call)."""

    enabled = False

    @contextlib.contextmanager
    def invocation(self, message_id: str, properties: Mapping[str, Any]) -> Iterator[None]:
        yield None

    def dependency(
        self, method: str, url: object, server: tuple[str, str, int], client_request_id: str | None
    ) -> None:
        return None


OFF = _Off()
AnyTelemetry = Telemetry | _Off


def from_settings(
    connection_string: str | None,
    *,
    client_id: str | None,
    accounts: Collection[str] = (),
    queue: str | None = None,
    sampling: SuccessSampling | None = None,
) -> AnyTelemetry:
    """The app's telemetry: Azure Monitor exporters authenticated with the managed identity when
    `APPLICATIONINSIGHTS_CONNECTION_STRING` is set; else the process's own OpenTelemetry SDK providers
    when something installed them (the local host's `--telemetry`, a test); else `OFF`. ``sampling``:
    which successes are exported (None: all)."""
    if connection_string:
        tracer, logger, meter = azure_monitor_providers(connection_string, client_id)
        return Telemetry(tracer, logger, meter, accounts=accounts, queue=queue, sampling=sampling)
    installed = installed_providers()
    if installed is None:
        return OFF
    return Telemetry(*installed, accounts=accounts, queue=queue, sampling=sampling)
