"""Which invocations export their spans and record (shared/telemetry.py, contract section 7): a failure
always; a success as OTEL_TRACES_SAMPLER says, carrying the sample rate Application Insights counts it by.
The outcome counter and the latency histogram count every message whatever was sampled.

Against the real emulators, as tests/delete_job/test_telemetry.py; read back from in-memory exporters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from delete_job.processor import Processor
from emulators.telemetry import Captured, capture
from shared.settings import Settings, SuccessSampling
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle
from tests.delete_job.test_processor import received, records
from tests.delete_job.test_telemetry import telemetry_settings

pytestmark = pytest.mark.usefixtures("identity_env")

# The span attribute azure-monitor-opentelemetry-exporter copies to an envelope's sampleRate.
SAMPLE_RATE = "_MS.sampleRate"

MakeProcessor = Callable[[SuccessSampling], Processor]


@pytest.fixture
def captured() -> Captured:
    return capture("sampling test")


@pytest.fixture
def settings(
    batch_emulator: BatchHandle, identity_env: IdentityHandle, servicebus: ServiceBusHandle
) -> Settings:
    return telemetry_settings(batch_emulator, servicebus, RETRY_DELAYS="60,300")


@pytest.fixture
async def make(settings: Settings, captured: Captured) -> AsyncIterator[MakeProcessor]:
    made: list[Processor] = []

    def create(sampling: SuccessSampling) -> Processor:
        telemetry = captured.telemetry(queue=settings.deletion_queue, sampling=sampling)
        made.append(Processor.create(settings, telemetry=telemetry))
        return made[-1]

    yield create
    for processor in made:
        await processor.close()


def attributes(item: Any) -> dict[str, Any]:
    return dict(item.attributes or {})


def invocations(captured: Captured) -> dict[str, list[Any]]:
    """The exported invocation spans by outcome."""
    result: dict[str, list[Any]] = {}
    for span in captured.spans():
        if span.kind is SpanKind.CONSUMER:
            result.setdefault(attributes(span)["outcome"], []).append(span)
    return result


def counted(captured: Captured) -> dict[str, float]:
    return {
        labels["outcome"]: value for name, labels, value in captured.metrics() if name == "deletion.outcomes"
    }


def requests_timed(captured: Captured) -> float:
    return sum(value for name, _, value in captured.metrics() if name == "batch.request.duration")


async def deleted(processor: Processor, batch: BatchHandle, count: int, prefix: str) -> None:
    for n in range(count):
        batch.control.add_job(f"{prefix}-{n}")
        result = await processor.process(received({"jobId": f"{prefix}-{n}"}))
        assert result.outcome == "Deleted"


async def test_sampled_away_successes_are_counted_and_failures_are_always_exported(
    make: MakeProcessor, batch_emulator: BatchHandle, servicebus: ServiceBusHandle, captured: Captured
) -> None:
    """No success kept (a ratio of 0): the Deleted messages leave no span and no record, but are counted
    and timed; a PreconditionFailed and an InvalidMessage are exported whole, with no sample rate."""
    processor = make(SuccessSampling("microsoft.fixed_percentage", 0.0))
    await deleted(processor, batch_emulator, 3, "quiet")
    batch_emulator.control.add_job("guarded")
    assert (await processor.process(received({"jobId": "guarded", "ifMatch": '"stale"'}))).outcome == (
        "PreconditionFailed"
    )
    assert (await processor.process(received({"jobId": "not a job"}))).outcome == "InvalidMessage"
    records(servicebus)

    exported = invocations(captured)
    assert set(exported) == {"PreconditionFailed", "InvalidMessage"}
    assert {attributes(log.log_record)["outcome"] for log in captured.logs()} == set(exported)
    (batch,) = [span for span in captured.spans() if span.kind is SpanKind.CLIENT]  # the 412's request
    assert attributes(batch)["http.response.status_code"] == 412
    assert all(SAMPLE_RATE not in attributes(span) for span in captured.spans())
    assert counted(captured) == {"Deleted": 3, "PreconditionFailed": 1, "InvalidMessage": 1}
    assert requests_timed(captured) == 4


async def test_kept_successes_carry_the_rate_application_insights_counts_them_by(
    make: MakeProcessor, batch_emulator: BatchHandle, captured: Captured
) -> None:
    """Half the successes kept: each kept one's spans carry sampleRate 50 (it stands for two), its record
    is in its trace, and the dropped ones left nothing but their count. (A run keeping none or all of 24
    fails: one chance in eight million.)"""
    processor = make(SuccessSampling("microsoft.fixed_percentage", 0.5))
    await deleted(processor, batch_emulator, 24, "half")

    kept = invocations(captured)["Deleted"]
    assert 0 < len(kept) < 24
    spans = captured.spans()
    assert len(spans) == 2 * len(kept)  # each kept invocation with its Batch DELETE
    assert all(attributes(span)[SAMPLE_RATE] == 50.0 for span in spans)
    kept_ids = {span.context.span_id for span in kept}
    parents = {span.parent.span_id if span.parent else None for span in spans if span.kind is SpanKind.CLIENT}
    assert parents == kept_ids
    assert {log.log_record.span_id for log in captured.logs()} == kept_ids
    assert counted(captured) == {"Deleted": 24}
    assert requests_timed(captured) == 24


async def test_rate_limited_exports_a_quiet_burst_whole_and_thins_a_flood(
    make: MakeProcessor, batch_emulator: BatchHandle, captured: Captured
) -> None:
    """About 5 a second: the first 5 successes (a quiet queue's) are all exported, unsampled; of 100 in
    a row most are dropped, and the kept ones say what share they stand for."""
    processor = make(SuccessSampling("microsoft.rate_limited", 5.0))
    await deleted(processor, batch_emulator, 5, "burst")
    first = invocations(captured)["Deleted"]
    assert len(first) == 5
    assert all(SAMPLE_RATE not in attributes(span) for span in first)

    await deleted(processor, batch_emulator, 100, "flood")
    later = invocations(captured)["Deleted"][5:]
    assert len(later) < 60
    rates = [attributes(span).get(SAMPLE_RATE, 100.0) for span in later]
    assert all(0 < rate < 100 for rate in rates[-5:])
    # each kept item stands for a whole number of items (Application Insights' itemCount)
    assert all(abs(100 / rate - round(100 / rate)) < 1e-9 for rate in rates)
    assert counted(captured) == {"Deleted": 105}
