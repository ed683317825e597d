"""shared/telemetry.py on its own: off costs nothing; which trace context a message carries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.telemetry import trace_parent

ROOT = Path(__file__).resolve().parents[2]
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_off_without_settings_imports_no_opentelemetry() -> None:
    """No connection string and no SDK installed: telemetry is off and OpenTelemetry is never imported,
    not even by a Batch client that was handed it."""
    code = (
        "import sys\n"
        "from shared.telemetry import from_settings\n"
        "from shared.batch_client import BatchClient\n"
        "t = from_settings(None, client_id=None)\n"
        "BatchClient('https://acct.westeurope.batch.azure.com', None, telemetry=t)\n"
        "print(t.enabled, sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "[]"]


def test_trace_parent_as_azure_servicebus_writes_it() -> None:
    """traceparent first, else Diagnostic-Id (older producers); tracestate with it; bytes decoded."""
    assert trace_parent({"traceparent": PARENT, "tracestate": "a=1"}) == (PARENT, "a=1")
    assert trace_parent({"Diagnostic-Id": PARENT}) == (PARENT, None)
    assert trace_parent({"traceparent": PARENT.encode(), "Diagnostic-Id": "other"}) == (PARENT, None)
    assert trace_parent({"traceparent": 7}) is None
    assert trace_parent({}) is None
