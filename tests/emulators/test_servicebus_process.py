"""The Service Bus emulator as a process: its one stdout line, queue declarations (command line and
config file), refused declarations, clean exit on signals, and the connection-string helper."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from emulators import EmulatorStartError, start
from emulators.servicebus import connection_string


def test_connection_string_points_the_sdk_at_the_emulator() -> None:
    """connection_string(url) is the development-emulator form the SDK and Functions host accept."""
    assert connection_string("sb://127.0.0.1:5672") == (
        "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
    with pytest.raises(ValueError, match="sb://host:port"):
        connection_string("http://127.0.0.1:5672")


def test_declared_queues_take_their_properties(tmp_path: Path) -> None:
    """--queue options and --config entries both declare queues, with their properties applied;
    only the ready line is written to stdout, and nothing to stderr."""
    config = tmp_path / "queues.json"
    config.write_text(
        json.dumps({"queues": [{"name": "failures", "lockDuration": 60, "defaultMessageTimeToLive": 3600}]})
    )
    with start(
        "emulators.servicebus",
        "--config",
        str(config),
        "--queue",
        "Orders:lockDuration=2.5,maxDeliveryCount=1,forwardDeadLetteredMessagesTo=failures",
    ) as process:
        assert re.fullmatch(r"sb://127\.0\.0\.1:\d+", process.url)
        with ServiceBusClient.from_connection_string(connection_string(process.url)) as client:
            with client.get_queue_sender("orders") as sender:
                sender.send_messages(ServiceBusMessage("x"))
            with (
                client.get_queue_receiver("orders") as receiver,
                client.get_queue_receiver("failures") as failures,
            ):
                before = datetime.now(UTC)
                [message] = receiver.receive_messages(max_wait_time=5)
                assert message.locked_until_utc is not None
                assert timedelta(seconds=2.4) <= message.locked_until_utc - before <= timedelta(seconds=3.5)
                receiver.abandon_message(message)  # maxDeliveryCount 1: dead-lettered, then forwarded
                [forwarded] = failures.receive_messages(max_wait_time=5)
                assert forwarded.dead_letter_source == "Orders"
                assert forwarded.locked_until_utc is not None
                assert forwarded.locked_until_utc - datetime.now(UTC) > timedelta(seconds=50)
                assert forwarded.time_to_live == timedelta(hours=1)  # the target's default
        process.stop()
        assert process.stdout_tail() == f"Service Bus emulator listening on {process.url}\n"
        assert process.stderr_tail() == ""


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--queue", "q:lockDuration=0"], "lockDuration must be > 0"),
        (["--queue", "q:lockDuration=301"], "lockDuration must be at most 300 s"),
        (["--shared-access-key", "RootManageSharedAccessKey"], "expected NAME=KEY"),
        (["--queue", "q:maxDeliveryCount=0"], "maxDeliveryCount must be an integer >= 1"),
        (["--queue", "q:duplicateDetectionWindow=-1"], "duplicateDetectionWindow must be >= 0"),
        (["--queue", "q:colour=blue"], "unknown properties ['colour']"),
        (["--queue", "q:lockDuration"], "is not key=value"),
        (["--queue", "bad name"], "queue name 'bad name'"),
        (["--queue", "q", "--queue", "Q"], "queue 'Q' is declared twice"),
        (["--queue", "q:forwardDeadLetteredMessagesTo=nowhere"], "undeclared queue 'nowhere'"),
        (["--queue", "q:forwardDeadLetteredMessagesTo=Q"], "cannot forward its dead letters to itself"),
        (["--config", "/nonexistent/queues.json"], "cannot read /nonexistent/queues.json"),
    ],
)
def test_declarations_that_cannot_be_honoured_stop_the_start(arguments: list[str], complaint: str) -> None:
    """A bad declaration ends the process at once (exit 2) with a message naming what is wrong."""
    with pytest.raises(EmulatorStartError) as raised:
        start("emulators.servicebus", *arguments)
    assert "exited with code 2" in str(raised.value)
    assert complaint in raised.value.stderr_tail


def test_malformed_config_file_is_refused(tmp_path: Path) -> None:
    """A config file that is not {"queues": [...]} is refused with its path in the message."""
    config = tmp_path / "queues.json"
    config.write_text(json.dumps({"queue": []}))
    with pytest.raises(EmulatorStartError) as raised:
        start("emulators.servicebus", "--config", str(config))
    assert f'{config}: expected {{"queues"' in raised.value.stderr_tail


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exits_cleanly_on_signal(signum: signal.Signals) -> None:
    """SIGTERM and SIGINT end the emulator with exit code 0 and nothing on stderr."""
    with start("emulators.servicebus", "--queue", "q") as process:
        process.process.send_signal(signum)
        exit_code = process.process.wait(timeout=5)
        process.stop()  # joins nothing, but lets the last stderr lines arrive
        assert (exit_code, process.stderr_tail()) == (0, "")
