"""The OpenTelemetry SDK providers the app exports through: Azure Monitor's exporters with the managed
identity (deployed), or the process's own providers (the local host, the tests). Imported only when
telemetry is on."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["SCOPE", "azure_monitor_providers", "build_providers", "installed_providers"]

SCOPE = (
    "batch-job-deleter"  # the instrumentation scope, and the service.name (Application Insights' cloud role)
)


def installed_providers() -> tuple[TracerProvider, LoggerProvider, MeterProvider] | None:
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

    resource = Resource.create({"service.name": SCOPE})
    # ALWAYS_ON, not the default ParentBased: a producer whose traceparent says "not sampled" must not
    # make a failure disappear.
    tracer = SdkTracerProvider(resource=resource, sampler=ALWAYS_ON)
    if span_exporter is not None:  # None: the caller adds its own, which needs this provider
        tracer.add_span_processor((BatchSpanProcessor if batch else SimpleSpanProcessor)(span_exporter))
    logger = SdkLoggerProvider(resource=resource)
    log_processor = BatchLogRecordProcessor if batch else SimpleLogRecordProcessor
    logger.add_log_record_processor(log_processor(log_exporter))
    meter = SdkMeterProvider(metric_readers=list(metric_readers), resource=resource)
    return tracer, logger, meter


def azure_monitor_providers(
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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    options: dict[str, Any] = {"connection_string": connection_string, "credential": credential}
    metric_reader = PeriodicExportingMetricReader(AzureMonitorMetricExporter(**options))
    tracer, logger, meter = build_providers(None, AzureMonitorLogExporter(**options), metric_reader)
    # The trace exporter reads the resource (service.name: the cloud role) from the provider it is given,
    # else from the global one, which the app does not set (the worker may own it): without it, every
    # export logs "Failed to derive Resource from Tracer Provider" (export/trace/_exporter.py).
    span_exporter = AzureMonitorTraceExporter(tracer_provider=tracer, **options)
    tracer.add_span_processor(BatchSpanProcessor(span_exporter))
    return tracer, logger, meter
