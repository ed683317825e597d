"""function_app as the Functions host sees it: one function, its trigger, and settings checked at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "BATCH_ENDPOINT": "https://acct.westeurope.batch.azure.com",
    "DELETION_QUEUE": "deletions",
    "DEAD_LETTER_QUEUE": "deletions-failed",
    "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
}
INDEX = """
import json, sys
from function_app import app
functions = app.get_functions()
print(json.dumps([
    {"name": f.get_function_name(), "json": json.loads(f.get_function_json()),
     "async": __import__("inspect").iscoroutinefunction(f.get_user_function())}
    for f in functions
]))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("azure.servicebus"))))
"""


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith("ServiceBus")}
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def test_the_app_indexes_one_async_service_bus_function() -> None:
    """The host finds `delete_job`: async, triggered by %DELETION_QUEUE% over ServiceBusConnection, the
    body bound as bytes."""
    result = run_python(INDEX, GOOD)
    assert result.returncode == 0, result.stderr
    functions_line, modules_line = result.stdout.strip().splitlines()[-2:]
    (function,) = json.loads(functions_line)
    assert function["name"] == "delete_job"
    assert function["async"] is True
    (binding,) = function["json"]["bindings"]
    assert binding == {
        "direction": "IN",
        "type": "serviceBusTrigger",
        "name": "msg",
        "connection": "ServiceBusConnection",
        "queueName": "%DELETION_QUEUE%",
        # the body as the producer's bytes, not a string with U+FFFD for bytes that are not UTF-8
        "dataType": "BINARY",
    }
    # Importing the app does not load the Service Bus SDK: only a failure record or retry copy needs it.
    assert json.loads(modules_line) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"BATCH_ENDPOINT": ""}, "BATCH_ENDPOINT"),
        ({"BATCH_ENDPOINT": "http://batch.example.com"}, "BATCH_ENDPOINT"),
        ({"RETRY_DELAYS": "soon"}, "RETRY_DELAYS"),
        ({"BATCH_ACCOUNTS": "{not json"}, "BATCH_ACCOUNTS"),
        ({"DEAD_LETTER_QUEUE": ""}, "DEAD_LETTER_QUEUE"),
    ],
)
def test_a_bad_setting_stops_the_import_naming_it(change: dict[str, str], named: str) -> None:
    """A missing or malformed setting fails when function_app is imported, with one error naming it."""
    result = run_python("import function_app", {**GOOD, **change})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("shared.settings.SettingsError: setting " + named)
