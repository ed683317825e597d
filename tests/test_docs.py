"""Every command the documentation shows runs: `deleter ...` against the Service Bus emulator (no usage
error, no traceback), `make TARGET` names a target of the Makefile. The README's walkthrough runs in full
in tests/test_walkthrough.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ServiceBusHandle
from tests.deleter_cli.test_enqueue import run
from tests.docs_commands import ROOT, commands, documents, make_targets

EXIT_USAGE = 2


def _all() -> list[tuple[str, list[str]]]:
    return [(str(path.relative_to(ROOT)), argv) for path in documents() for argv in commands(path)]


def test_the_docs_show_commands() -> None:
    """The README's walkthrough and the operators' page have their commands in console blocks."""
    shown = {where for where, _ in _all()}
    assert {"README.md", "docs/operators.md"} <= shown


def test_every_documented_command_runs(
    servicebus: ServiceBusHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each one as written (files it names exist in the current folder), on the emulator's queues."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deletions.jsonl").write_text('{"jobId": "a"}\n{"jobId": "b"}\n')
    (tmp_path / "fixed.json").write_text(json.dumps({"jobId": "x"}))
    queues = servicebus.queues
    monkeypatch.setenv("ServiceBusConnection", servicebus.connection_string)
    monkeypatch.setenv("DELETION_QUEUE", queues.queue)
    monkeypatch.setenv("DEAD_LETTER_QUEUE", queues.forward_target)
    targets = make_targets()
    for where, argv in _all():
        program, *args = argv
        if program == "make":
            assert args[0] in targets, f"{where}: make {args[0]} is not a Makefile target"
        elif program in ("deleter", ".venv/bin/deleter"):
            result = run(*args)
            assert result.exit_code != EXIT_USAGE, f"{where}: {argv}: {result.output}"
            assert "Traceback" not in result.output, f"{where}: {argv}"
        else:
            pytest.fail(f"{where}: {argv}: a command no test runs (add it to this test)")


def test_every_relative_link_in_the_docs_leads_to_a_file() -> None:
    """A link such as [deployment](docs/deployment.md) opens: it is resolved from the page's own folder,
    as GitHub and every Markdown viewer do (a link written from the README's folder breaks in docs/)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
