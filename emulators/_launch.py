"""Start and stop emulator processes: ``start("emulators.batch")`` -> a ``RunningProcess``.

The child runs ``python -m <module> --port 0 ...`` and announces its URL on one stdout line
("... listening on <url>"). After that line, daemon threads keep draining both pipes so a chatty
child can never block on a full pipe; the last lines of stderr are kept for error messages.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["EmulatorStartError", "RunningProcess", "start"]

_READY = re.compile(r"listening on (\S+)")
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TAIL_LINES = 50


class EmulatorStartError(RuntimeError):
    """The process exited or stayed silent before announcing its URL; carries its stderr tail."""

    def __init__(self, message: str, stderr_tail: str) -> None:
        super().__init__(f"{message}\n--- stderr (last lines) ---\n{stderr_tail}")
        self.stderr_tail = stderr_tail


def _drain(stream: IO[str], sink: deque[str], lines: queue.Queue[str | None], feed: threading.Event) -> None:
    """Read ``stream`` to its end; lines also go to ``lines`` while ``feed`` is set."""
    for line in stream:
        sink.append(line)
        if feed.is_set():
            lines.put(line)
    if feed.is_set():
        lines.put(None)  # end of stream


class RunningProcess:
    """A started emulator: ``url`` is what it announced; ``stop()`` is idempotent."""

    def __init__(
        self, process: subprocess.Popen[str], url: str, stdout: deque[str], stderr: deque[str]
    ) -> None:
        self.process = process
        self.url = url
        self._stdout = stdout
        self._stderr = stderr

    def stdout_tail(self) -> str:
        """The last lines the process wrote to stdout (the "listening on" line included)."""
        return "".join(self._stdout)

    def stderr_tail(self) -> str:
        """The last lines the process wrote to stderr."""
        return "".join(self._stderr)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RunningProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    module: str, *args: str, env: dict[str, str] | None = None, ready_timeout: float = 20
) -> RunningProcess:
    """Run ``python -m module --port 0 *args`` and wait for its "listening on" line.

    ``env`` entries are added to (and override) this process's environment.
    Raises ``EmulatorStartError`` if the process exits or does not announce itself in time.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    python_path = child_env.get("PYTHONPATH")
    child_env["PYTHONPATH"] = (
        f"{_PROJECT_ROOT}{os.pathsep}{python_path}" if python_path else str(_PROJECT_ROOT)
    )
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE was asked for
        raise RuntimeError("subprocess pipes missing")
    stderr: deque[str] = deque(maxlen=_TAIL_LINES)
    stdout: deque[str] = deque(maxlen=_TAIL_LINES)
    lines: queue.Queue[str | None] = queue.Queue()
    waiting = threading.Event()
    waiting.set()
    threads = [
        threading.Thread(target=_drain, args=(stream, sink, lines, feed), name=f"{module}-drain", daemon=True)
        for stream, sink, feed in (
            (process.stdout, stdout, waiting),
            (process.stderr, stderr, threading.Event()),
        )
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            why = f"did not announce itself within {ready_timeout} s"
            break
        if line is None:  # stdout closed: the process is ending
            try:
                why = f"exited with code {process.wait(timeout=5)}"
            except subprocess.TimeoutExpired:
                why = "closed its stdout without announcing itself"
            break
        match = _READY.search(line)
        if match:
            waiting.clear()
            return RunningProcess(process, match.group(1), stdout, stderr)
    RunningProcess(process, "", stdout, stderr).stop()
    threads[1].join(timeout=2)  # the last stderr lines explain the failure
    raise EmulatorStartError(f"{module} {why}", "".join(stderr))
