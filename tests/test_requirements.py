"""The deployed dependency set is exactly the tested one: requirements.txt pins and hashes every package
Azure's remote build installs, and the test environment runs on the same pins (README, "Dependencies")."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def lock_problems(text: str) -> tuple[dict[str, str], list[str]]:
    """The pins of a generated requirements file, and what is wrong with it: every requirement must be
    `name==version` with at least one sha256 hash, and no option may name an index or a local path."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    # Join backslash continuations, drop comments.
    logical = re.sub(r"\\\n\s*", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("#"):
            continue
        if not line:
            continue
        if line.startswith("-"):
            problems.append(f"option line: {line[:60]}")
            continue
        match = _PIN.match(line)
        if match is None:
            problems.append(f"not pinned with ==: {line[:60]}")
            continue
        name = canonicalize_name(match.group(1))
        pins[name] = match.group(2)
        if "--hash=sha256:" not in line:
            problems.append(f"no hash: {name}")
    return pins, problems


def _lock(name: str) -> dict[str, str]:
    pins, problems = lock_problems((ROOT / name).read_text())
    assert problems == [], f"{name}: {problems}"
    return pins


def _ranges(name: str) -> list[Requirement]:
    found = []
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_requirement_is_pinned_and_hashed(lock: str) -> None:
    """Each generated file pins every package with its hashes, and names no index or path of this machine."""
    pins = _lock(lock)
    assert len(pins) >= 10


@pytest.mark.parametrize(
    ("ranges", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_accepted_range_is_pinned_inside_it(ranges: str, lock: str) -> None:
    """The lock is up to date with its .in file: each package named there is pinned inside its range."""
    pins = _lock(lock)
    for requirement in _ranges(ranges):
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} from {ranges} is not in {lock}: run make lock"
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"{requirement.name}=={pinned} in {lock} is outside {requirement.specifier} in {ranges}: "
            "run make lock"
        )


def test_the_tests_run_on_the_deployed_versions() -> None:
    """What is deployed (requirements.txt) is pinned the same in the dev lock and installed here as pinned."""
    runtime, dev = _lock("requirements.txt"), _lock("requirements-dev.txt")
    for name, pinned in runtime.items():
        assert dev.get(name) == pinned, f"{name}: {pinned} deployed, {dev.get(name)} in requirements-dev.txt"
    wrong = {}
    for name, pinned in dev.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert wrong == {}, f"installed versions differ from requirements-dev.txt (pinned, installed): {wrong}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("httpx>=0.28\n", "not pinned with ==: httpx>=0.28"),
        ("httpx==0.28.1\n", "no hash: httpx"),
        ("--extra-index-url https://example.invalid/simple\nhttpx==0.28.1 --hash=sha256:ab\n", "option line"),
    ],
)
def test_the_lock_check_can_fail(text: str, problem: str) -> None:
    """A range, a missing hash or an index option is reported."""
    _, problems = lock_problems(text)
    assert any(p.startswith(problem) for p in problems), problems
