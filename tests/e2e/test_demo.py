"""`make demo` runs `python -m emulators.demo`: every outcome shown, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def emulator_processes() -> set[int]:
    """Emulator processes started from this checkout (their working directory): another checkout's tests
    may run on the same machine at the same time."""
    found = set()
    for process in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "-m emulators." in cmdline and process.info["cwd"] == str(ROOT):
            found.add(process.info["pid"])
    return found


def test_demo_shows_every_outcome_and_leaves_no_process() -> None:
    """The demo settles every request as expected, prints each outcome and the dead-letter table, and
    stops every process it started."""
    before = emulator_processes()
    result = subprocess.run(
        [sys.executable, "-m", "emulators.demo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for outcome in (
        "Deleted",
        "AlreadyDeleted",
        "AlreadyDeleting",
        "PreconditionFailed",
        "InvalidMessage",
        "RetryScheduled",
        "RetriesExhausted",
        "BatchRejected",
    ):
        assert outcome in result.stdout, f"{outcome} missing from the demo's output:\n{result.stdout}"
    assert "10 of 10 as expected" in result.stdout
    assert "RetryScheduled (403 AuthorizationFailure) -> " in result.stdout  # 403: delayed retries only
    table = result.stdout.split("The dead-letter queue, as an operator sees it:")[1]
    for job in ("demo-protected", "demo-typo", "demo-forbidden", "demo-unauthenticated"):  # the four records
        assert job in table, f"{job} missing from the dead-letter table:\n{table}"
    assert "Abandoned" not in result.stdout
    assert emulator_processes() - before == set()
