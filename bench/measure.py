"""What every benchmark section shares: the machine's description, CPU time of other processes, the
emulators the path sections run against, and running one measurement in a child process of its own.

Each client under test runs in its own child process (``python -m bench.<module> ...``) that prints one
JSON object per line: its CPU time never mixes with another client's or with this orchestrator's.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil

from emulators import RunningProcess, start
from emulators.control import BatchEmulator, IdentityEndpoint, IngestionEndpoint

__all__ = [
    "ROOT",
    "SIZES",
    "Services",
    "Size",
    "app_env",
    "child_env",
    "cpu_seconds",
    "machine",
    "median",
    "run_child",
    "services",
    "telemetry_env",
]

ROOT = Path(__file__).resolve().parent.parent
BATCH_RESOURCE = "https://batch.core.windows.net/"
API_VERSION = "2025-06-01"
# Settings and identity variables the children get from us only, never from the caller's environment.
_INHERITED_NOT = (
    "IDENTITY_",
    "MSI_",
    "IMDS_",
    "BATCH_",
    "ServiceBusConnection",
    "AZURE_",
    "DELETION_QUEUE",
    "APPLICATIONINSIGHTS_",
    "OTEL_",  # the sampler: each case sets its own
)
_PACKAGES = (
    "httpx",
    "aiohttp",
    "yarl",
    "msgspec",
    "httpx-aiohttp",
    "httpcore",
    "sniffio",
    "azure-core",
    "azure-identity",
    "azure-functions",
    "azure-servicebus",
    "azure-batch",
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


class StealMeter:
    """The share of all CPUs' time the hypervisor took while the benchmark ran (Linux; else 0)."""

    def __init__(self) -> None:
        self._start = psutil.cpu_times()

    def percent(self) -> float:
        end = psutil.cpu_times()
        total = sum(end) - sum(self._start)
        stolen = getattr(end, "steal", 0.0) - getattr(self._start, "steal", 0.0)
        return 100 * stolen / total if total > 0 else 0.0


def machine() -> dict[str, str]:
    """What the figures were measured on: no host name, no paths."""
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {psutil.cpu_count(logical=False)} physical",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "packages": ", ".join(f"{name} {_version(name)}" for name in _PACKAGES),
    }


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without settings or identity variables, plus ``extra`` and the project on
    PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_NOT)}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
    env.update(extra or {})
    return env


def run_child(
    args: Sequence[str], env: dict[str, str], *, timeout: float = 600, name: str | None = None
) -> list[dict[str, Any]]:
    """Run ``python <args>`` and return the JSON objects it printed, one a line."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{name or ' '.join(args[:4])} exited with {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@dataclass(frozen=True)
class Size:
    """How much each section measures (``--size``)."""

    repeats: int  # runs per client; the figures are their medians
    concurrency: tuple[int, ...]  # section 1
    seconds: float  # one measured window
    warmup: float  # seconds at the same concurrency before each window
    latency_concurrency: tuple[int, ...]  # section 2
    latency_seconds: float
    soak_warmup: int  # messages before the first RSS reading (section 3)
    soak_messages: int
    cold_runs: int  # cold subprocesses of each kind (section 4)
    host_messages: int  # section 5 (10,000 at full size: opening links and the last settlements weigh little)
    host_concurrency: tuple[int, ...]  # maxConcurrentCalls of the runs through Service Bus


SIZES = {
    "full": Size(3, (16, 64), 2.0, 0.5, (16, 64, 256), 2.5, 5_000, 100_000, 7, 10_000, (64, 256)),
    "tiny": Size(1, (16, 64), 0.2, 0.05, (16, 64, 256), 0.2, 200, 1_000, 1, 40, (64,)),
}


@dataclass(frozen=True)
class Services:
    """The Batch emulator (autoCreate: every DELETE is a 202), the managed-identity endpoint, and the
    Application Insights ingestion stand-in the telemetry-on runs upload to."""

    batch_url: str
    batch_pid: int
    batch: BatchEmulator
    token_url: str  # IDENTITY_ENDPOINT
    identity_secret: str  # IDENTITY_HEADER
    identity: IdentityEndpoint
    ingestion: IngestionEndpoint
    ingestion_certificate: str  # what the exporters trust (REQUESTS_CA_BUNDLE)
    scratch: str  # a temporary folder, removed when the services stop: the exporters' TMPDIR

    def token(self) -> str:
        """One Batch token from the identity endpoint, as the peers send it."""
        response = httpx.get(
            self.token_url,
            params={"api-version": "2019-08-01", "resource": BATCH_RESOURCE},
            headers={"X-IDENTITY-HEADER": self.identity_secret},
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def app_env(s: Services) -> dict[str, str]:
    """The function app's settings, pointing at the emulators (the happy path never uses Service Bus)."""
    return {
        "BATCH_ENDPOINT": s.batch_url,
        "DELETION_QUEUE": "bench-deletions",
        "DEAD_LETTER_QUEUE": "bench-failed",
        "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
        "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
        "IDENTITY_ENDPOINT": s.token_url,
        "IDENTITY_HEADER": s.identity_secret,
    }


def telemetry_env(s: Services) -> dict[str, str]:
    """What a process with telemetry on gets besides ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (that one
    is ``BENCH_APPLICATIONINSIGHTS_CONNECTION_STRING`` here, for the process to set when it measures
    telemetry on): the exporters upload to the stand-in, as the deployed app uploads to Application
    Insights (with the managed identity's token, over HTTPS), and keep anything they must retry under
    ``scratch``, never in the machine's temp folder (their offline storage goes under
    ``tempfile.gettempdir()``: azure-monitor-opentelemetry-exporter ``export/_base.py``). Statsbeat (the
    exporter's usage reports to Microsoft's hosts; docs "Statsbeat in Application Insights") and the
    exporter's configuration polling ("OneSettings", ``_configuration/_state.py``) are off: neither host is
    reachable from a bench, and neither is the app's work."""
    return {
        "BENCH_APPLICATIONINSIGHTS_CONNECTION_STRING": s.ingestion.connection_string(
            "00000000-0000-0000-0000-000000000000"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "REQUESTS_CA_BUNDLE": s.ingestion_certificate,
        "TMPDIR": s.scratch,
    }


@contextmanager
def services() -> Iterator[Services]:
    """Start the emulators and the ingestion stand-in; stopped, and the scratch folder removed, on the
    way out, whatever happened."""
    secret = os.urandom(12).hex()
    with ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        batch: RunningProcess = stack.enter_context(start("emulators.batch"))
        identity: RunningProcess = stack.enter_context(
            start("emulators.identity", env={"IDENTITY_HEADER": secret})
        )
        tls = Path(scratch) / "ingestion-tls"
        # It keeps few envelopes: the bench reads none, and a run uploads hundreds of thousands.
        ingestion = stack.enter_context(start("emulators.ingestion", "--tls-dir", str(tls), "--keep", "1000"))
        batch_control = stack.enter_context(BatchEmulator(batch.url))
        identity_control = stack.enter_context(IdentityEndpoint(identity.url))
        certificate = str(tls / "cert.pem")
        ingestion_control = stack.enter_context(IngestionEndpoint(ingestion.url, certificate))
        batch_control.configure(autoCreate=True)
        yield Services(
            batch.url,
            batch.process.pid,
            batch_control,
            identity_control.token_url,
            secret,
            identity_control,
            ingestion_control,
            certificate,
            scratch,
        )
