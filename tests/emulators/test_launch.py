"""Starting and stopping emulator processes: the ready line, CLI options, clean shutdown."""

from __future__ import annotations

import re
import signal
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from emulators import EmulatorStartError, start
from emulators.control import BatchEmulator, tls_context
from tests.emulators.conftest import API_VERSION, bearer, wait_until


def test_ready_line_is_the_only_stdout() -> None:
    """The Batch emulator prints exactly its ready line, even after serving requests."""
    with start("emulators.batch") as process:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", process.url)
        httpx.delete(f"{process.url}/jobs/x?api-version={API_VERSION}", verify=tls_context())
        with BatchEmulator(process.url) as control:
            assert control.health()
        process.stop()
        assert process.stdout_tail() == f"Batch emulator listening on {process.url}\n"
        assert process.stderr_tail() == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exits_cleanly_on_signal(signum: signal.Signals) -> None:
    """SIGTERM and SIGINT end the process with exit code 0."""
    with start("emulators.batch") as process:
        process.process.send_signal(signum)
        assert process.process.wait(timeout=5) == 0


def test_exits_cleanly_with_a_request_in_flight() -> None:
    """SIGTERM while a slow answer is pending still ends the process with exit code 0."""
    with start("emulators.batch") as process, BatchEmulator(process.url) as control:
        control.add_fault(latencyMs=60_000)
        parts = urlsplit(process.url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as sock:
            sock.sendall(b"DELETE /jobs/x?api-version=2025-06-01 HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: control.stats()["requests"] == 0 and len(control.requests()) == 1)
            process.process.send_signal(signal.SIGTERM)
            assert process.process.wait(timeout=5) == 0
            assert sock.recv(1024) == b""
        assert process.stderr_tail() == ""


def test_stop_is_idempotent() -> None:
    """stop() twice is harmless; the process is gone after the first."""
    process = start("emulators.batch")
    process.stop()
    process.stop()
    assert process.process.returncode == 0


def test_cli_defaults_survive_reset() -> None:
    """--delete-delay-ms and --latency-ms become the config that reset returns to."""
    with (
        start("emulators.batch", "--delete-delay-ms", "250", "--latency-ms", "1") as process,
        BatchEmulator(process.url) as control,
    ):
        control.configure(deleteDelayMs=0, latencyMs=0)
        control.reset()
        config = control.config()
        assert (config["deleteDelayMs"], config["latencyMs"]) == (250, 1)
        control.add_job("job-1")
        url = f"{process.url}/jobs/job-1?api-version={API_VERSION}"
        headers = {"Authorization": bearer()}
        assert httpx.delete(url, headers=headers, verify=tls_context()).status_code == 202
        assert control.get_job("job-1")["state"] == "deleting"  # type: ignore[index]


def test_request_log_is_bounded() -> None:
    """--request-log-limit keeps only the newest entries."""
    with (
        start("emulators.batch", "--request-log-limit", "3") as process,
        BatchEmulator(process.url) as control,
        httpx.Client(base_url=process.url, verify=tls_context()) as http,
    ):
        for _ in range(5):
            http.delete(f"/jobs/x?api-version={API_VERSION}")
        assert [entry["seq"] for entry in control.requests()] == [3, 4, 5]
        assert control.stats()["requests"] == 5


def test_verbose_logs_requests_to_stderr_without_tokens() -> None:
    """--verbose writes one access-log line per request to stderr; the token never appears."""
    authorization = bearer()
    with start("emulators.batch", "--verbose") as process:
        url = f"{process.url}/jobs/job-1?api-version={API_VERSION}"
        httpx.delete(url, headers={"Authorization": authorization}, verify=tls_context())
        process.stop()
    assert "DELETE /jobs/job-1 -> 404" in process.stderr_tail()
    assert authorization.split()[1] not in process.stderr_tail()


def test_bad_arguments_fail_with_stderr() -> None:
    """A process that exits before announcing itself raises with its stderr tail."""
    with pytest.raises(EmulatorStartError, match="must be >= 0") as caught:
        start("emulators.batch", "--delete-delay-ms", "-1")
    assert "exited with code 2" in str(caught.value)


def test_silence_past_the_deadline_fails() -> None:
    """A process that does not announce itself in time is stopped and reported."""
    with pytest.raises(EmulatorStartError, match="did not announce itself"):
        start("emulators.batch", ready_timeout=0.001)
