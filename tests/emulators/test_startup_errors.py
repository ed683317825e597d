"""A process that cannot start says why in one line on stderr (setting, what to do), exits non-zero,
and shows a traceback only with --debug: the emulators, `up`, the local host and the operator tool."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_SERVICE_BUS = (
    "Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process (this one) already listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, list[str]]:
    """Run `python -m ARGS` in the project folder; the exit code and the lines of stderr."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and modules
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "module",
    [
        ["emulators.batch"],
        ["emulators.servicebus"],
        ["emulators.identity", "--secret", "s"],
        ["emulators.ingestion", "--tls-dir", "{tmp}"],
    ],
)
def test_an_emulator_on_a_port_in_use_says_so_in_one_line(
    module: list[str], busy_port: int, tmp_path: Path
) -> None:
    """`address already in use` becomes: port N is already in use, is it already running?"""
    code, lines = launch(*[arg.replace("{tmp}", str(tmp_path)) for arg in module], "--port", str(busy_port))
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"{module[0]}: error: port {busy_port} is already in use: is it already running?"
    )


def test_debug_shows_the_traceback(busy_port: int) -> None:
    """--debug: the whole story, for a bug report."""
    code, lines = launch("emulators.batch", "--port", str(busy_port), "--debug")
    assert code == 1
    assert "Traceback (most recent call last):" in lines


def test_up_names_the_emulator_that_could_not_start(busy_port: int) -> None:
    """A second `python -m emulators up` (its Batch port taken): one line, not two nested tracebacks."""
    code, lines = launch("emulators", "up", env={"BATCH_ENDPOINT": f"http://127.0.0.1:{busy_port}"})
    assert code == 1
    assert lines == [
        f"python -m emulators up: error: emulators.batch could not start: port {busy_port} is already in"
        " use: is it already running? Stop the other process, or choose another port with --port"
        " (--debug shows the traceback)"
    ]


def test_the_host_names_a_bad_setting(closed_port: int) -> None:
    """A setting the function refuses: its name, what is wrong, where to fix it."""
    code, lines = launch(
        "emulators.host",
        "--port",
        "0",
        env={
            "BATCH_ENDPOINT": "batch.example",
            "ServiceBusConnection": UNREACHABLE_SERVICE_BUS.format(port=closed_port),
        },
    )
    assert code == 1
    assert lines == [
        "emulators.host: error: setting BATCH_ENDPOINT: must be an absolute https:// URL; fix it in"
        " local.settings.json or the environment (--debug shows the traceback)"
    ]


def test_the_host_says_when_service_bus_cannot_be_reached(closed_port: int) -> None:
    """Service Bus down: one line naming the setting and `make up`, not 70 lines of asyncio noise."""
    code, lines = launch(
        "emulators.host",
        "--port",
        "0",
        env={"ServiceBusConnection": UNREACHABLE_SERVICE_BUS.format(port=closed_port)},
    )
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("emulators.host: error: cannot reach Service Bus (")
    assert "`make up` starts the emulators that ServiceBusConnection names" in lines[0]


def test_the_operator_tool_says_it_is_connecting_then_fails_in_one_line(closed_port: int) -> None:
    """Before anything else the tool says where it connects; an unreachable namespace is one error
    line and exit 3 (the SDK's retries are cut to one, so it comes within seconds)."""
    code, lines = launch(
        "deleter_cli",
        "dead-letters",
        "list",
        env={
            "ServiceBusConnection": UNREACHABLE_SERVICE_BUS.format(port=closed_port),
            "DEAD_LETTER_QUEUE": "q",
        },
    )
    assert code == 3
    where = "(from ServiceBusConnection in the environment)"
    assert lines[0] == f"connecting to Service Bus at 127.0.0.1:{closed_port} {where}"
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"error: could not reach Service Bus at 127.0.0.1:{closed_port}")
