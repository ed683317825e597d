"""The README's "Five minutes by hand", run as written, in order, on the emulators: seed, enqueue, host,
list, show, replay with a change, discard. `make up` / `make host` / `make seed` run what their Makefile
recipes run (with free ports instead of the sample's fixed ones); `.venv/bin/deleter` is the console
script `make venv` installs. WALKTHROUGH_TRANSCRIPT=FILE writes what a reader would see."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import httpx
import pytest

from emulators.control import BatchEmulator
from tests.docs_commands import ROOT, commands
from tests.polling import wait_for

PYTHON = sys.executable
DELETER = Path(PYTHON).parent / "deleter"
# What each make target of the walkthrough runs (the Makefile's recipe, checked below), on free ports.
RECIPES = {
    "up": ("$(BIN)/python -m emulators up", [PYTHON, "-m", "emulators", "up", "--free-ports"]),
    "host": (
        "$(BIN)/python -m emulators.host --port $(HOST_PORT)",
        [PYTHON, "-m", "emulators.host", "--port", "0"],
    ),
    "seed": ("$(BIN)/python -m emulators seed $(JOBS)", [PYTHON, "-m", "emulators", "seed"]),
}


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _lines_until(stream: IO[str], pattern: str) -> list[str]:
    """Lines of `stream` up to the first matching `pattern` (pytest-timeout bounds a process that hangs)."""
    lines = []
    for line in stream:
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"the process ended before {pattern!r}: {lines}")


class Walkthrough:
    def __init__(self, stack: ExitStack, tmp: Path) -> None:
        self.stack = stack
        self.tmp = tmp
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.transcript: list[str] = []
        self.host_log = tmp / "host.log"
        self.host_url = ""

    def background(self, argv: list[str], ready: str, stderr: IO[str] | int) -> subprocess.Popen[str]:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter
            argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        self.stack.callback(_stop, process)
        assert process.stdout is not None
        self.transcript += _lines_until(process.stdout, ready)
        return process

    def up(self) -> None:
        process_lines_start = len(self.transcript)
        self.background(RECIPES["up"][1], r"Ctrl-C stops them all", subprocess.DEVNULL)
        for line in self.transcript[process_lines_start:]:
            match = re.match(r"\s*export (\w+)='(.*)'$", line)
            if match:
                self.env[match.group(1)] = match.group(2)

    def host(self) -> None:
        log = self.stack.enter_context(self.host_log.open("w", encoding="utf-8"))
        self.background(RECIPES["host"][1], r"Functions host listening on", log)
        self.host_url = self.transcript[-1].split()[-1]

    def run(self, argv: list[str], expect: int = 0) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and console script
            argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        output = (done.stdout + done.stderr).rstrip()
        self.transcript.append(output)
        assert done.returncode == expect, output
        assert "Traceback" not in output
        return output

    def settled(self, count: int) -> None:
        def completed() -> bool:
            stats = httpx.get(f"{self.host_url}/_host/stats", timeout=5).json()
            return int(stats.get("completed", 0)) >= count

        assert wait_for(completed, f"{count} messages settled by the host", 30)


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[Walkthrough]:
    with ExitStack() as stack:
        yield Walkthrough(stack, tmp_path)


def test_the_make_targets_run_what_the_walkthrough_runs() -> None:
    """`make up`, `make host`, `make seed` are the recipes this test stands in for."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target, (recipe, _) in RECIPES.items():
        assert re.search(rf"^{target}: .*\n\t{re.escape(recipe)}$", makefile, re.MULTILINE), target


def test_the_readme_walkthrough(walkthrough: Walkthrough) -> None:
    """Seed, enqueue, host, list, show, replay with a change, discard: as the README says, it works."""
    steps = commands(ROOT / "README.md", "walkthrough")
    assert steps[0] == ["make", "up"]
    batch: BatchEmulator | None = None
    enqueued = 0
    for argv in steps:
        walkthrough.transcript.append("$ " + shlex.join(argv))
        program, *args = argv
        if argv == ["make", "up"]:
            walkthrough.up()
            batch = walkthrough.stack.enter_context(BatchEmulator(walkthrough.env["BATCH_ENDPOINT"]))
        elif argv == ["make", "host"]:
            walkthrough.host()
        elif program == "make" and args[0] == "seed":
            jobs = args[1].removeprefix("JOBS=").split()
            walkthrough.run([*RECIPES["seed"][1], *jobs])
        else:
            assert program == ".venv/bin/deleter", argv
            if args[:2] == ["dead-letters", "list"]:
                walkthrough.settled(enqueued)  # the reader waits a moment for the host
            deleter = [str(DELETER)] if DELETER.exists() else [PYTHON, "-m", "deleter_cli"]
            output = walkthrough.run([*deleter, *args])
            enqueued += args[0] == "enqueue"
            check(args, output, walkthrough, batch)
    walkthrough.settled(enqueued + 1)  # the replayed copy
    assert batch is not None
    assert wait_for(lambda: batch.get_job("nightly-43") is None, "nightly-43 deleted by the replay", 30)
    assert batch.get_job("nightly-42") is None
    assert batch.get_job("nightly-44") is not None  # discarded: its record gone, the job kept
    host_says = walkthrough.host_log.read_text(encoding="utf-8")
    assert "Deleted: job nightly-42" in host_says
    assert "PreconditionFailed: job nightly-43" in host_says
    assert "Deleted: job nightly-43" in host_says
    walkthrough.transcript.append("(the host's terminal)\n" + host_says.rstrip())
    if os.environ.get("WALKTHROUGH_TRANSCRIPT"):
        Path(os.environ["WALKTHROUGH_TRANSCRIPT"]).write_text("\n".join(walkthrough.transcript) + "\n")


def check(args: list[str], output: str, walkthrough: Walkthrough, batch: BatchEmulator | None) -> None:
    """What each step shows the reader."""
    flat = " ".join(output.split())
    if args[:2] == ["dead-letters", "list"]:
        assert "2 dead letters on queue" in flat
        assert "PreconditionFailed 412 ConditionNotMet" in flat
        assert "job nightly-43" in flat
        assert "message demo-43:failed" in flat
        assert "replay with updated preconditions" in flat
    elif args[:2] == ["dead-letters", "show"]:
        assert "demo-43:failed" in flat
        assert "ConditionNotMet" in flat
    elif args[:2] == ["dead-letters", "replay"] and "--dry-run" in args:
        assert 'with preconditions removed: {"jobId": "nightly-43"}' in flat
    elif args[:2] == ["dead-letters", "replay"]:
        assert "replayed 1 to queue" in flat
    elif args[:2] == ["dead-letters", "discard"]:
        assert "discarded 1 from queue" in flat
