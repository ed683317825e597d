"""The commands the documentation shows: every `$ ` line of a ```console block in README.md and docs/*.md,
so that tests run exactly what a reader would type."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"(?:<!-- commands: (\w+)[^>]*-->\n)?```console\n(.*?)```", re.DOTALL)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(path: Path, block: str | None = None) -> list[list[str]]:
    """Each `$ ` line of the file's console blocks (or only of the one marked `<!-- commands: block`),
    split as a shell would (comments dropped)."""
    found = []
    for name, text in _BLOCK.findall(path.read_text(encoding="utf-8")):
        if block is not None and name != block:
            continue
        for line in text.splitlines():
            if line.startswith("$ "):
                found.append(shlex.split(line[2:], comments=True))
    return found


def make_targets() -> set[str]:
    """The targets the Makefile defines."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.MULTILINE))
