"""The deployed export path: the Azure Monitor exporters, with the managed identity's token, uploading to
an Application Insights ingestion endpoint (the stand-in, emulators/ingestion.py) -- what Application
Insights would store, read back envelope by envelope.

The app runs in a child process (tests/shared/deployed_export.py) built as production builds it:
``Processor.create(load_settings(env))`` with ``APPLICATIONINSIGHTS_CONNECTION_STRING``, the identity
endpoint as the managed identity, the Batch and Service Bus emulators. The process's exit flushes the
exporters (the SDK's ``atexit`` shutdown), so the uploads are complete when it has ended.

The child's environment also:
- ``APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true``: statsbeat would upload the exporter's own
  health metrics to Microsoft's hosts (docs "Statsbeat in Application Insights"; the exporter reads the
  variable in ``statsbeat/_state.py`` ``is_statsbeat_enabled``);
- ``APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED=true``: the exporter would otherwise poll its
  configuration service ("OneSettings", ``_constants._ONE_SETTINGS_CNAME``) from a thread of its own
  (``_configuration/_state.py`` ``get_configuration_manager``);
- ``REQUESTS_CA_BUNDLE``: the stand-in's self-signed certificate (the exporter sends with azure-core's
  requests transport, which honours the variable; a bearer token is never sent over plain HTTP);
- ``TMPDIR``: a folder of the test's, where the exporter would put its offline storage
  (``export/_base.py`` ``_get_storage_directory``: under ``tempfile.gettempdir()``): it must stay empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BatchHandle, IdentityHandle, IngestionHandle, ServiceBusHandle
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
MONITOR_AUDIENCE = "https://monitor.azure.com/"
_NOT_INHERITED = ("IDENTITY_", "MSI_", "IMDS_", "APPLICATIONINSIGHTS_", "OTEL_", "AZURE_", "BATCH_")


def _child_env(
    key: str,
    tmp: Path,
    batch: BatchHandle,
    identity: IdentityHandle,
    servicebus: ServiceBusHandle,
    ingestion: IngestionHandle,
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(_NOT_INHERITED)}
    python_path = env.get("PYTHONPATH")
    env.update(
        {
            "PYTHONPATH": f"{ROOT}{os.pathsep}{python_path}" if python_path else str(ROOT),
            "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.control.connection_string(key),
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
            "REQUESTS_CA_BUNDLE": ingestion.certificate,
            "TMPDIR": str(tmp),
            "IDENTITY_ENDPOINT": identity.url,
            "IDENTITY_HEADER": identity.secret,
            "BATCH_ENDPOINT": batch.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "ServiceBusConnection": servicebus.connection_string,
            "QUICK_RETRY_DELAYS": "0.01,0.01",
            # Every span exported, successes too: what is sampled away is not this test's subject (the
            # sampler setting of shared/telemetry.py; OpenTelemetry's standard variable and value).
            "OTEL_TRACES_SAMPLER": "always_on",
        }
    )
    return env


class Exported:
    """One run of the deployed app: its results (one per message) and what reached the stand-in."""

    def __init__(self, results: list[dict[str, Any]], envelopes: list[dict[str, Any]], stderr: str) -> None:
        self.results = results
        self.envelopes = envelopes
        self.stderr = stderr

    def of(self, base_type: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e["data"]["baseType"] == base_type]

    def one(self, base_type: str, operation_id: str, parent_id: str) -> dict[str, Any]:
        """The one item of that type in the operation, a child of ``parent_id``: its ``baseData``."""
        (envelope,) = [e for e in self.of(base_type) if e["tags"].get("ai.operation.id") == operation_id]
        assert envelope["tags"]["ai.operation.parentId"] == parent_id
        data: dict[str, Any] = envelope["data"]["baseData"]
        return data

    def outcome_counts(self) -> dict[tuple[str, str], float]:
        counts: dict[tuple[str, str], float] = {}
        for envelope in self.of("MetricData"):
            data = envelope["data"]["baseData"]
            for metric in data["metrics"]:
                if metric["name"] == "deletion.outcomes":
                    labels = data["properties"]
                    key = (labels["outcome"], labels["account"])
                    counts[key] = counts.get(key, 0) + metric["value"]
        return counts


@pytest.fixture
def deploy(
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    servicebus: ServiceBusHandle,
    ingestion: IngestionHandle,
    tmp_path: Path,
) -> Any:
    def run(messages: list[dict[str, Any]]) -> Exported:
        key = str(uuid.uuid4())
        tmp = tmp_path / "tmp"
        tmp.mkdir()
        env = _child_env(key, tmp, batch_emulator, identity_endpoint, servicebus, ingestion)
        child = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "tests.shared.deployed_export", json.dumps(messages)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        results = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
        assert len(results) == len(messages), child.stderr[-3000:]
        # Nothing was kept for a retry: every upload was accepted at once.
        assert [p.name for p in tmp.rglob("*") if p.is_file()] == []  # (its folders exist from the start)

        def arrived() -> list[dict[str, Any]] | None:
            mine = [e for e in ingestion.control.envelopes() if e.get("iKey") == key]
            return mine if len({e["data"]["baseType"] for e in mine}) >= 4 else None

        what = f"the exporters' uploads; the app's stderr:\n{child.stderr[-3000:]}"
        return Exported(results, wait_for(arrived, what), child.stderr)

    return run


def test_a_deleted_job_and_a_rejected_one_reach_application_insights(
    deploy: Any,
    batch_emulator: BatchHandle,
    identity_endpoint: IdentityHandle,
    ingestion: IngestionHandle,
    token_canary: str,
) -> None:
    """For each message: a request with the outcome, a dependency for the Batch DELETE with Batch's
    request-id, a trace whose custom dimensions are the record's fields, in one operation (the producer's,
    when the message carries its traceparent); the outcome counter; every upload authenticated with a
    token for Azure Monitor; no token anywhere in the data."""
    trace_id, producer_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    for job in ("nightly-42", "kept", "traced"):
        batch_emulator.control.add_job(job)
    batch_emulator.control.add_fault(
        match={"jobId": "kept"}, times=None, status=400, code="InvalidHeaderValue"
    )
    got = deploy(
        [
            {"body": {"jobId": "nightly-42"}},
            {"body": {"jobId": "kept"}},
            {"body": {"jobId": "traced"}, "properties": {"traceparent": f"00-{trace_id}-{producer_span}-01"}},
        ]
    )
    deleted, rejected, traced = got.results
    assert [r["outcome"] for r in got.results] == ["Deleted", "BatchRejected", "Deleted"]

    # Application Insights' SeverityLevel: 1 Information, 3 Error (contracts' SeverityLevel enum).
    cases = (
        (deleted, "nightly-42", 202, 1, True),
        (rejected, "kept", 400, 3, False),
        (traced, "traced", 202, 1, True),
    )
    operations = {}
    for result, job, status, level, success in cases:
        (envelope,) = [
            e for e in got.of("RequestData") if e["data"]["baseData"]["properties"]["jobId"] == job
        ]
        operation, request = envelope["tags"]["ai.operation.id"], envelope["data"]["baseData"]
        operations[job] = envelope["tags"]
        assert request["properties"]["outcome"] == result["outcome"]
        assert request["success"] is success  # a failed request: what "failures" in the portal count

        dependency = got.one("RemoteDependencyData", operation, request["id"])
        assert dependency["resultCode"] == str(status)
        assert dependency["properties"]["batch.request_id"] == result["requestId"]
        assert dependency["properties"]["batch.client_request_id"] == result["clientRequestId"]
        assert f"/jobs/{job}" in dependency["data"]
        # the Batch host and its port (not the scheme's default here), as the portal's map names it
        assert dependency["target"] == batch_emulator.url.removeprefix("http://")

        message = got.one("MessageData", operation, request["id"])
        assert message["severityLevel"] == level
        fields = message["properties"]
        assert fields["outcome"] == result["outcome"]
        assert fields["jobId"] == job
        assert fields["httpStatus"] == str(status)
        assert fields["requestId"] == result["requestId"]
        assert fields["clientRequestId"] == result["clientRequestId"]
        assert fields["messageId"] == result["messageId"]

    # The producer's trace is the operation: one query by operation_Id finds the producer and this app.
    assert operations["traced"]["ai.operation.id"] == trace_id
    assert operations["traced"]["ai.operation.parentId"] == producer_span
    assert len({tags["ai.operation.id"] for tags in operations.values()}) == 3

    assert got.outcome_counts() == {("Deleted", "default"): 2, ("BatchRejected", "default"): 1}
    # The cloud role is the app's service.name, read from the app's own tracer provider: no
    # "Failed to derive Resource" error from the exporter at each export.
    assert {tags["ai.cloud.role"] for tags in operations.values()} == {"batch-job-deleter"}
    assert "Failed to derive Resource" not in got.stderr

    uploads = ingestion.control.uploads()
    assert uploads
    assert {(u["status"], u["audience"]) for u in uploads} == {(200, MONITOR_AUDIENCE)}
    assert identity_endpoint.control.stats()["byResource"].get(MONITOR_AUDIENCE, 0) >= 1

    text = json.dumps(got.envelopes)
    assert token_canary not in text  # no token (Batch's or Monitor's: both carry it) in any envelope
    assert "authorization" not in text.lower()
