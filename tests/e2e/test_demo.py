"""`make demo` runs `python -m emulators.demo`: every outcome shown, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil

from emulators import demo

ROOT = Path(__file__).resolve().parents[2]


def processes_of_run(marker: str) -> set[int]:
    """The processes whose environment carries this run's marker: the demo and whatever it started,
    wherever they were reparented (other tests, in other pytest-xdist workers, start emulators too)."""
    found = set()
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get(_MARKER) == marker:
                found.add(process.info["pid"])
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


_MARKER = "DEMO_TEST_RUN"


def test_demo_shows_every_outcome_and_leaves_no_process() -> None:
    """The demo settles every request as expected, prints each outcome and the dead-letter table, and
    stops every process it started."""
    marker = str(uuid.uuid4())
    result = subprocess.run(
        [sys.executable, "-m", "emulators.demo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), _MARKER: marker},
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
        "DeletionConfirmed",
        "VerificationScheduled",
        "DeletionStuck",
    ):
        assert outcome in result.stdout, f"{outcome} missing from the demo's output:\n{result.stdout}"
    assert "11 of 11 as expected" in result.stdout
    assert "RetryScheduled (403 AuthorizationFailure) -> " in result.stdout  # 403: delayed retries only
    assert "Deleted (202) -> DeletionConfirmed (404 JobNotFound)" in result.stdout  # verified gone
    assert "VerificationScheduled (200) -> DeletionStuck (200)" in result.stdout  # stuck in deleting
    table = result.stdout.split("The dead-letter queue, as an operator sees it:")[1]
    records = ("demo-protected", "demo-typo", "demo-forbidden", "demo-unauthenticated", "demo-stuck")
    for job in records:  # the five records
        assert job in table, f"{job} missing from the dead-letter table:\n{table}"
    assert "Abandoned" not in result.stdout
    assert processes_of_run(marker) == set()


def test_demo_tells_each_story_incausal_order() -> None:
    """A verification's record can reach the log before the record of the delivery that scheduled it (seen
    on a busy machine: "DeletionConfirmed -> Deleted"); the demo shows the original delivery, then its
    retries, then its verifications, and keeps redeliveries of one message in log order."""
    logged: list[dict[str, Any]] = [
        {"messageId": "m:verify1", "outcome": "DeletionConfirmed"},
        {"messageId": "m:retry2", "outcome": "Deleted"},
        {"messageId": "m", "outcome": "RetryScheduled", "deliveryCount": 1},
        {"messageId": "m:retry1", "outcome": "RetryScheduled"},
        {"messageId": "m", "outcome": "RetryScheduled", "deliveryCount": 2},
    ]
    story = sorted(logged, key=demo.causal_order)
    assert [(r["messageId"], r.get("deliveryCount")) for r in story] == [
        ("m", 1),
        ("m", 2),
        ("m:retry1", None),
        ("m:retry2", None),
        ("m:verify1", None),
    ]
