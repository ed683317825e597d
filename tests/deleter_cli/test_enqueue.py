"""`python -m deleter_cli enqueue` and the tool's settings, against the real Service Bus emulator.

The tool runs in-process through typer's CliRunner (and once as a real subprocess); what it sent is read
back from the queue with the SDK.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver
from typer.testing import CliRunner, Result

from deleter_cli import app
from deleter_cli._config import Connection, Sources
from tests.conftest import ServiceBusHandle

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (
    "ServiceBusConnection",
    "ServiceBusConnection__fullyQualifiedNamespace",
    "DELETION_QUEUE",
    "DEAD_LETTER_QUEUE",
)


def run(*args: str, stdin: str | None = None) -> Result:
    """The tool in-process, on a wide console (so tables are not cut)."""
    return CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "220"})


def flat(text: str) -> str:
    """`text` on one line, without the boxes rich draws around panels."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def connect(servicebus: ServiceBusHandle) -> list[str]:
    return ["--connection-string", servicebus.connection_string]


@dataclass(frozen=True)
class QueueReader:
    """Reads a test's queues with the sync SDK. Clients are closed in the background, as conftest's
    ServiceBusApi does: the SDK takes up to a second to close, which would dominate these tests."""

    servicebus: ServiceBusHandle
    runner: Any  # conftest's _SdkRunner

    @contextmanager
    def receiver(self, queue: str) -> Iterator[ServiceBusReceiver]:
        client = ServiceBusClient.from_connection_string(self.servicebus.connection_string)
        try:
            yield client.get_queue_receiver(queue)
        finally:
            self.runner.close_later(False, client.close)

    def peek(self, queue: str) -> list[ServiceBusReceivedMessage]:
        with self.receiver(queue) as receiver:
            return list(receiver.peek_messages(max_message_count=100, sequence_number=1))

    def take_all(self, queue: str, expected: int) -> list[ServiceBusReceivedMessage]:
        """Receive and complete `expected` messages, then check that nothing else is there."""
        got: list[ServiceBusReceivedMessage] = []
        with self.receiver(queue) as receiver:
            while len(got) < expected:
                batch = receiver.receive_messages(max_message_count=expected - len(got), max_wait_time=5)
                if not batch:
                    break
                for message in batch:
                    receiver.complete_message(message)
                got += batch
            assert receiver.peek_messages(max_message_count=10, sequence_number=1) == []
        return got


@pytest.fixture
def reader(servicebus: ServiceBusHandle, request: pytest.FixtureRequest) -> QueueReader:
    """The test's queues, read back."""
    return QueueReader(servicebus, request.getfixturevalue("_servicebus_runner"))


def body(message: ServiceBusReceivedMessage) -> bytes:
    return b"".join(message.body)


def test_enqueue_one_request_arrives_with_the_exact_body(
    servicebus: ServiceBusHandle, reader: QueueReader
) -> None:
    """The options become one JSON object, sent as application/json with the given ids."""
    client_request_id = str(uuid.uuid4())
    result = run(
        "enqueue",
        "--job-id", "nightly-42",
        "--account", "westeurope-prod",
        "--force",
        "--time-out", "20",
        "--if-match", "0x8DD1F2A3B4C5D6E",
        "--if-unmodified-since", "2026-11-28T10:00:00Z",
        "--client-request-id", client_request_id,
        "--reason", "workflow 42 [finished]",
        "--message-id", "m-42",
        "--correlation-id", "corr-42",
        "--queue", servicebus.queues.queue,
        *connect(servicebus),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "m-42" in result.stdout
    [message] = reader.take_all(servicebus.queues.queue, 1)
    assert json.loads(body(message)) == {
        "jobId": "nightly-42",
        "account": "westeurope-prod",
        "force": True,
        "timeOut": 20,
        "ifMatch": "0x8DD1F2A3B4C5D6E",
        "ifUnmodifiedSince": "2026-11-28T10:00:00Z",
        "clientRequestId": client_request_id,
        "reason": "workflow 42 [finished]",
    }
    assert body(message).startswith(b'{"jobId":"nightly-42","account":"westeurope-prod","force":true,')
    assert (message.message_id, message.correlation_id) == ("m-42", "corr-42")
    assert message.content_type == "application/json"


def test_enqueue_without_message_id_uses_a_fresh_uuid(
    servicebus: ServiceBusHandle, reader: QueueReader
) -> None:
    """`--no-force` is sent as false; the message id is a new UUID; only the given fields are sent."""
    result = run(
        "enqueue", "--job-id", "j-1", "--no-force", "--queue", servicebus.queues.queue, *connect(servicebus)
    )
    assert result.exit_code == 0, result.output
    [message] = reader.take_all(servicebus.queues.queue, 1)
    assert body(message) == b'{"jobId":"j-1","force":false}'
    assert uuid.UUID(str(message.message_id)).version == 4
    assert str(message.message_id) in result.stdout


def test_enqueue_invalid_request_is_rejected_and_nothing_is_sent(
    servicebus: ServiceBusHandle, reader: QueueReader
) -> None:
    """The model's own reason is shown, exit 1, and the queue stays empty."""
    result = run(
        "enqueue", "--job-id", "nightly 42", "--time-out", "5", "--queue", servicebus.queues.queue,
        *connect(servicebus),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "$.jobId" in result.stderr
    assert "sent 0, rejected 1" in flat(result.stdout)
    assert reader.take_all(servicebus.queues.queue, 0) == []


def test_enqueue_file_sends_valid_lines_and_reports_invalid_ones(
    servicebus: ServiceBusHandle, tmp_path: Path, reader: QueueReader
) -> None:
    """JSON lines: bad lines are named by number and not sent; the valid ones are sent as written."""
    lines = [
        '{"jobId": "a-1", "reason": "first"}',
        '{"jobId": "a-2", "ifmatch": "0x1"}',
        "",
        '{"jobId":"a-3"}\r',
        "{not json",
        '{"jobId": "a-4", "timeOut": "5"}',
        '{"jobId": "a-5", "force": true}',
    ]
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(lines) + "\n")
    result = run(
        "enqueue", "--file", str(requests), "--correlation-id", "batch-7", "--queue", servicebus.queues.queue,
        *connect(servicebus),
    )  # fmt: skip
    assert result.exit_code == 1
    errors = flat(result.stderr)
    assert "line 2: Object contains unknown field `ifmatch`" in errors
    assert "line 5: body is not one valid JSON object" in errors
    assert "line 6: timeOut must be a whole number of seconds from 1 to 2147483647" in errors
    assert "Expected `int | null`, got `str` - at `$.timeOut`" in errors
    reported = [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("line ")]
    assert reported == ["line 2", "line 5", "line 6"]
    assert "sent 3, rejected 3" in flat(result.stdout)
    got = reader.take_all(servicebus.queues.queue, 3)
    assert [body(m) for m in got] == [
        b'{"jobId": "a-1", "reason": "first"}',
        b'{"jobId":"a-3"}',
        b'{"jobId": "a-5", "force": true}',
    ]
    assert {m.correlation_id for m in got} == {"batch-7"}
    assert len({m.message_id for m in got}) == 3


def test_enqueue_reads_json_lines_from_stdin(servicebus: ServiceBusHandle, reader: QueueReader) -> None:
    """`--file -` reads standard input; all valid: exit 0."""
    stdin = '{"jobId": "s-1"}\n{"jobId": "s-2", "account": "second"}\n'
    result = run(
        "enqueue", "--file", "-", "--queue", servicebus.queues.queue, *connect(servicebus), stdin=stdin
    )
    assert result.exit_code == 0, result.output
    assert "sent 2, rejected 0" in flat(result.stdout)
    got = reader.take_all(servicebus.queues.queue, 2)
    assert [body(m) for m in got] == [b'{"jobId": "s-1"}', b'{"jobId": "s-2", "account": "second"}']


def test_enqueue_dry_run_validates_and_sends_nothing(
    servicebus: ServiceBusHandle, reader: QueueReader
) -> None:
    """`--dry-run` reports valid and rejected lines and needs no connection."""
    stdin = '{"jobId": "d-1"}\n{"jobId": ""}\n'
    result = run("enqueue", "--file", "-", "--dry-run", "--queue", servicebus.queues.queue, stdin=stdin)
    assert result.exit_code == 1
    assert "line 2:" in result.stderr
    assert "1 valid, 1 rejected; nothing was sent" in flat(result.stdout)
    assert reader.take_all(servicebus.queues.queue, 0) == []


def test_enqueue_file_and_request_options_do_not_mix(tmp_path: Path) -> None:
    """One request from options or many from a file, not both; a missing file is named."""
    result = run("enqueue", "--file", "-", "--job-id", "x")
    assert result.exit_code == 2
    assert "--file takes no request options" in result.stderr
    missing = run("enqueue", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    assert "Traceback" not in missing.output


def test_missing_queue_is_named_and_the_key_is_never_printed(servicebus: ServiceBusHandle) -> None:
    """An unknown queue: exit 3, the queue and where its name came from; no stack trace, no key."""
    secret = servicebus.secondary_key  # a key the emulator accepts, so the missing queue is what fails
    connection = servicebus.connection_string.replace("SAS_KEY_VALUE", secret)
    result = run("enqueue", "--job-id", "j-1", "--queue", "no-such-queue", "--connection-string", connection)
    assert result.exit_code == 3
    message = flat(result.stderr)
    assert "queue 'no-such-queue' (from --queue) does not exist" in message
    assert "Traceback" not in result.output
    assert secret not in result.output


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without options, environment or local settings, the error names the options and the settings."""
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    no_queue = run("enqueue", "--job-id", "j-1")
    assert no_queue.exit_code == 2
    assert "no deletion queue: pass --queue or set DELETION_QUEUE" in flat(no_queue.stderr)
    no_connection = run("enqueue", "--job-id", "j-1", "--queue", "q")
    assert no_connection.exit_code == 2
    message = flat(no_connection.stderr)
    assert "--namespace" in message
    assert "ServiceBusConnection__fullyQualifiedNamespace" in message
    no_dlq = run("dead-letters", "list", "--connection-string", "Endpoint=sb://x;SharedAccessKey=k")
    assert "no dead-letter queue: pass --dead-letter-queue or set DEAD_LETTER_QUEUE" in flat(no_dlq.stderr)
    bad = run("enqueue", "--job-id", "j-1", "--queue", "q", "--connection-string", "AccountKey=hunter2")
    assert bad.exit_code == 2
    assert "not a Service Bus connection string" in bad.stderr
    assert "hunter2" not in bad.output


def test_local_settings_supply_what_options_and_environment_do_not(
    servicebus: ServiceBusHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reader: QueueReader
) -> None:
    """local.settings.json in the current directory is read like the app's; the environment wins."""
    monkeypatch.chdir(tmp_path)
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    values = {"ServiceBusConnection": servicebus.connection_string, "DELETION_QUEUE": "not-this-one"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}))
    monkeypatch.setenv("DELETION_QUEUE", servicebus.queues.queue)
    result = run("enqueue", "--job-id", "from-settings")
    assert result.exit_code == 0, result.output
    [message] = reader.take_all(servicebus.queues.queue, 1)
    assert body(message) == b'{"jobId":"from-settings"}'


def test_a_namespace_in_the_environment_is_not_overridden_by_a_file_connection_string(tmp_path: Path) -> None:
    """The connection settings travel together: the environment's namespace beats a sample's string."""
    sample = {"Values": {"ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKey=k"}}
    (tmp_path / "local.settings.sample.json").write_text(json.dumps(sample))
    env = {"ServiceBusConnection__fullyQualifiedNamespace": "prod.servicebus.windows.net"}
    connection = Connection.resolve(None, None, Sources.load(env, tmp_path))
    assert (connection.namespace, connection.connection_string) == ("prod.servicebus.windows.net", None)
    from_file = Connection.resolve(None, None, Sources.load({}, tmp_path))
    assert from_file.namespace == "127.0.0.1:5672"
    assert from_file.source == "ServiceBusConnection in local.settings.sample.json"


def test_python_dash_m_runs_the_tool(
    servicebus: ServiceBusHandle, tmp_path: Path, reader: QueueReader
) -> None:
    """`python -m deleter_cli` as a subprocess: settings from the environment, JSON lines on stdin."""
    env = {
        **os.environ,
        "ServiceBusConnection": servicebus.connection_string,
        "DELETION_QUEUE": servicebus.queues.queue,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "deleter_cli", "enqueue", "--file", "-"],
        input=b'{"jobId": "p-1"}\n{"jobId": "p-2", "endpoint": "https://evil.example"}\n',
        capture_output=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    stdout, stderr = completed.stdout.decode(), completed.stderr.decode()
    assert completed.returncode == 1, stderr
    assert "line 2:" in stderr
    assert "an endpoint never comes from a message" in flat(stderr)
    assert "sent 1, rejected 1" in stdout
    [message] = reader.take_all(servicebus.queues.queue, 1)
    assert body(message) == b'{"jobId": "p-1"}'


def test_enqueue_refuses_an_account_the_function_does_not_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BATCH_ACCOUNTS from the same place as the connection: an unlisted account is rejected before
    anything is sent (the function would record InvalidMessage); from another place it is not judged."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "ServiceBusConnection", "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=a;SharedAccessKey=b"
    )
    monkeypatch.setenv("BATCH_ACCOUNTS", json.dumps({"emulator2": "http://127.0.0.1:1"}))
    result = run("enqueue", "--job-id", "j-1", "--account", "nowhere", "--dry-run")
    assert result.exit_code == 1
    assert (
        "account 'nowhere' is not listed in BATCH_ACCOUNTS (BATCH_ACCOUNTS in the environment: emulator2);"
        " the function would refuse it"
    ) in flat(result.stderr)
    assert run("enqueue", "--job-id", "j-1", "--account", "emulator2", "--dry-run").exit_code == 0
    monkeypatch.delenv("BATCH_ACCOUNTS")
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"BATCH_ACCOUNTS": "{}"}}))
    assert run("enqueue", "--job-id", "j-1", "--account", "nowhere", "--dry-run").exit_code == 0
