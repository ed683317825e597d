"""`make bench` end to end at a tiny size: every section is measured and written, and the figures parse.

The figures of a tiny run mean nothing, so nothing here checks a timing; what a user would notice is a
benchmark that crashes, leaves a section out, writes a table whose numbers cannot be read back, or leaks
the machine's name or paths into a file meant to be committed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from bench.report import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
_NUMBER = re.compile(r"-?\d[\d,]*(\.\d+)?")


def _run_bench(out: Path) -> subprocess.CompletedProcess[str]:
    """``python -m bench --size tiny`` in a process group of its own, killed whole if it overruns, so no
    emulator outlives a failed test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench", "--size", "tiny", "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=110)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _tables(markdown: str) -> dict[str, list[list[list[str]]]]:
    """Section (``## `` heading) -> its tables (``### `` subsections included), each as its body rows."""
    tables: dict[str, list[list[list[str]]]] = {}
    heading = ""
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table:
            tables.setdefault(heading, []).append([])
            in_table = True
        tables[heading][-1].append([cell.strip() for cell in line.strip("|").split("|")])
    return {name: [rows[2:] for rows in found] for name, found in tables.items()}  # without header, rule


def test_make_bench_writes_every_section_with_figures_that_parse(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    result = _run_bench(out)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text(encoding="utf-8")

    tables = _tables(text)
    for section in SECTIONS:
        assert tables.get(section), f"section {section!r} has no table"
        for rows in tables[section]:
            assert rows, f"{section}: a table without rows"
            for row in rows:
                assert len(row) >= 2, row
                for cell in row[1:]:  # a label, then figures
                    assert _NUMBER.fullmatch(cell), f"{section}: {cell!r} in {row} is not a number"

    # Section 1 has every peer at every concurrency, and where the whole path's CPU goes.
    peers, by_function, by_package = tables[SECTIONS[0]]
    clients = {row[0] for row in peers}
    for name in (
        "whole path",
        "raw aiohttp",
        "floor",
        "httpx.AsyncClient",
        "azure-batch aio, one",
        "begin_delete_job",
    ):
        assert any(name in client for client in clients), f"no {name!r} row in section 1: {clients}"
    assert {row[1] for row in peers} == {"16", "64"}
    # The sampled stacks name the app's own functions, and the packages that ran.
    assert any(row[0].startswith(("`shared/", "`delete_job/")) for row in by_function), by_function
    assert len(by_package) >= 2, by_package
    [latency] = tables[SECTIONS[1]]
    assert [row[0] for row in latency] == ["16", "64", "256"]

    # The targets are all judged, and the machine is described without naming it or this checkout.
    [targets] = tables["Targets"]
    assert len(targets) >= 7
    assert all(row[2] in ("yes", "**no**") for row in targets), targets
    # ... and the run ends by printing them, each held or missed, then the count.
    printed = result.stdout.strip().splitlines()
    judged = [line for line in printed if line.startswith(("  held  ", "  MISSED  "))]
    assert len(judged) == len(targets), printed[-20:]
    missed = sum(row[2] != "yes" for row in targets)
    assert printed[-1] == f"{len(targets) - missed} held, {missed} missed"
    machine = {row[0]: row[1] for row in tables["Machine"][0]}
    for field in ("CPU", "cores", "Python", "OS", "date"):
        assert machine.get(field), f"machine description lacks {field}"
    assert socket.gethostname() not in re.findall(r"[\w.-]+", text)  # as a word: it may be short
    assert str(ROOT) not in text
    assert str(tmp_path) not in text
    # The cold function process handled its message without loading the Service Bus SDK.
    assert "azure.servicebus modules loaded by the cold function process: none." in text
