"""The layout is the architecture: what the deployed function may import, and what is not deployed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Production code: deployed. It never imports the stand-ins, the tests, the bench or the operator tool.
PRODUCTION = ("function_app.py", "delete_job", "shared")
FORBIDDEN = ("emulators", "tests", "bench", "deleter_cli")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(*roots: str) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = ROOT / root
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def test_production_code_imports_no_emulator_test_bench_or_operator_tool() -> None:
    """delete_job/, shared/ and function_app.py import none of emulators/, tests/, bench/, deleter_cli/."""
    offending = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & set(FORBIDDEN)) for path in _files(*PRODUCTION)
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_shared_never_imports_the_function() -> None:
    """shared/ is what any function would use: it imports nothing of delete_job/."""
    assert [str(p.relative_to(ROOT)) for p in _files("shared") if "delete_job" in _imports(p)] == []


def test_the_operator_tool_is_not_deployed() -> None:
    """The operator tool is a top-level package of its own, and .funcignore keeps it out of the package."""
    ignored = (ROOT / ".funcignore").read_text(encoding="utf-8").split()
    assert (ROOT / "deleter_cli" / "__init__.py").is_file()
    assert "deleter_cli/" in ignored
    assert not (ROOT / "delete_job" / "cli").exists()
