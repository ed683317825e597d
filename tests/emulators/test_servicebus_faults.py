"""The Service Bus emulator's faults and checks, through the real SDK: sends refused on purpose
(``rejectSendRate``), every connection dropped on SIGUSR1, and the canary watch on received bytes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient as AsyncServiceBusClient
from azure.servicebus.exceptions import OperationTimeoutError, ServiceBusQuotaExceededError

from emulators import RunningProcess, start
from emulators.servicebus import connection_string
from emulators.servicebus._config import ConfigError, load_config_file, parse_queue_spec
from emulators.servicebus._server import scan
from tests.polling import wait_for

SEED = 7


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningProcess]:
    with start(
        "emulators.servicebus",
        "--queue",
        f"coin:rejectSendRate=0.5,rejectSendSeed={SEED}",
        "--queue",
        "full:rejectSendRate=1",
        "--queue",
        "locks:lockDuration=3",
        "--queue",
        "stalled:stallSendRate=1",
        "--queue",
        "plain",
    ) as process:
        yield process


@pytest.fixture(scope="module")
def client(emulator: RunningProcess) -> Iterator[ServiceBusClient]:
    with ServiceBusClient.from_connection_string(connection_string(emulator.url)) as sb:
        yield sb


def received_bodies(client: ServiceBusClient, queue: str) -> list[str]:
    with client.get_queue_receiver(queue) as receiver:
        return [str(m) for m in receiver.peek_messages(max_message_count=100)]


def test_reject_send_rate_refuses_that_share_of_sends_once_each(client: ServiceBusClient) -> None:
    """Each send is refused with the queue's probability, reproducibly with a seed; a refusal surfaces
    from send_messages as ServiceBusQuotaExceededError, which the SDK does not retry: the refusals follow
    one draw per call exactly (a retry would take a draw of its own), and refused messages are not stored."""
    draws = random.Random(SEED)
    expected = ["refused" if draws.random() < 0.5 else "sent" for _ in range(20)]
    seen = []
    errors = set()
    with client.get_queue_sender("coin") as sender:
        for n in range(20):
            try:
                sender.send_messages(ServiceBusMessage(f"m{n}"))
            except ServiceBusQuotaExceededError as error:
                errors.add(error.args[0].rsplit("Error condition:", 1)[-1].strip())
                seen.append("refused")
            else:
                seen.append("sent")
    assert seen == expected
    assert errors == {"amqp:resource-limit-exceeded."}
    assert 5 < seen.count("refused") < 15
    assert received_bodies(client, "coin") == [f"m{n}" for n in range(20) if expected[n] == "sent"]


async def test_a_refused_batch_stores_none_of_its_messages(emulator: RunningProcess) -> None:
    """With the aio SDK, as the function sends: a batch is refused whole, and the sender still works."""
    async with AsyncServiceBusClient.from_connection_string(connection_string(emulator.url)) as sb:
        async with sb.get_queue_sender("full") as sender:
            for _ in range(2):
                with pytest.raises(ServiceBusQuotaExceededError):
                    await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
        async with sb.get_queue_receiver("full") as receiver:
            assert await receiver.peek_messages(max_message_count=10) == []


async def test_stall_send_rate_leaves_sends_unanswered(emulator: RunningProcess) -> None:
    """stallSendRate=1: a send is never answered, so the aio SDK's send ends only at its own timeout,
    and nothing is stored; the queue's receivers and other queues keep working."""
    conn = connection_string(emulator.url)
    async with (
        AsyncServiceBusClient.from_connection_string(conn, retry_total=0) as aio,
        aio.get_queue_sender("stalled") as sender,
    ):
        with pytest.raises(OperationTimeoutError, match="timed out"):
            await sender.send_messages(ServiceBusMessage("never answered"), timeout=1)
    with ServiceBusClient.from_connection_string(conn) as client:
        assert received_bodies(client, "stalled") == []
        with client.get_queue_sender("plain") as other:
            other.send_messages(ServiceBusMessage("answered"))
        assert received_bodies(client, "plain") == ["answered"]


def test_reject_send_options_are_validated(tmp_path: Path) -> None:
    assert parse_queue_spec("q:rejectSendRate=0.25,rejectSendSeed=3").reject_send_rate == 0.25
    assert parse_queue_spec("q").reject_send_rate == 0
    config = tmp_path / "queues.json"
    config.write_text(json.dumps({"queues": [{"name": "q", "rejectSendRate": 1, "rejectSendSeed": 9}]}))
    [queue] = load_config_file(config)
    assert (queue.reject_send_rate, queue.reject_send_seed) == (1.0, 9)
    for bad in ("rejectSendRate=1.5", "rejectSendRate=-0.1", "rejectSendRate=nan", "rejectSendSeed=x"):
        with pytest.raises(ConfigError, match="rejectSend"):
            parse_queue_spec(f"q:{bad}")


def test_sigusr1_drops_every_connection_and_keeps_the_locks(
    emulator: RunningProcess, client: ServiceBusClient
) -> None:
    """SIGUSR1 resets every client connection and says how many. A message locked before the drop stays
    locked (a new receiver does not get it) until its lock expires, then comes back, its delivery counted.
    (That the SDK reconnects by itself is shown end to end, in tests/e2e/test_dependency_faults.py.)"""
    with client.get_queue_sender("locks") as old_sender, client.get_queue_receiver("locks") as old_receiver:
        old_sender.send_messages(ServiceBusMessage("held"))
        [held] = old_receiver.receive_messages(max_wait_time=5)
        os.kill(emulator.process.pid, signal.SIGUSR1)
        dropped = wait_for(
            lambda: re.search(r"SIGUSR1: dropped (\d+) connection", emulator.stderr_tail()), "the drop"
        )
        assert int(dropped.group(1)) >= 2  # this sender's and this receiver's, at least
        with client.get_queue_sender("locks") as sender, client.get_queue_receiver("locks") as receiver:
            sender.send_messages(ServiceBusMessage("after"))
            [first] = receiver.receive_messages(max_wait_time=5)
            assert str(first) == "after"  # not "held": still locked
            receiver.complete_message(first)
            [back] = receiver.receive_messages(max_wait_time=10)
            assert (str(back), back.sequence_number, back.delivery_count) == ("held", held.sequence_number, 1)
            receiver.complete_message(back)


@pytest.mark.parametrize("stream", [b"xxCANARY-1yy", b"CANARY-1", b"aaaaCANARY-", b"CANARY-2"])
def test_scan_finds_the_canary_however_the_stream_is_cut(stream: bytes) -> None:
    """Every way of cutting the stream into two or three chunks gives the same answer as the whole."""
    needle = b"CANARY-1"
    expected = needle in stream
    cuts = [(i, j) for i in range(len(stream) + 1) for j in range(i, len(stream) + 1)]
    for i, j in cuts:
        found, tail = False, b""
        for chunk in (stream[:i], stream[i:j], stream[j:]):
            hit, tail = scan(needle, tail, chunk)
            found = found or hit
        assert found == expected, (i, j)


def test_canary_on_the_wire_is_reported_once_per_connection(tmp_path: Path) -> None:
    """A connection that carries the canary (here in a message body) is reported with its peer, once; to
    stderr and to the report file. Connections without it are not."""
    report = tmp_path / "canary-report"
    canary = "CANARY-servicebus-test-4f1c"  # not the session's: this test's own emulator and report
    env = {"EMULATOR_CANARY": canary, "EMULATOR_CANARY_REPORT": str(report)}
    with start("emulators.servicebus", "--queue", "q", env=env) as process:
        conn = connection_string(process.url)
        with ServiceBusClient.from_connection_string(conn) as sb, sb.get_queue_sender("q") as sender:
            sender.send_messages(ServiceBusMessage("nothing to see"))
            assert not report.exists()
            for _ in range(2):
                sender.send_messages(ServiceBusMessage(f"leaked {canary} here"))

        def reported() -> list[str] | None:
            return report.read_text().splitlines() if report.exists() else None

        lines = wait_for(reported, "a report line")
        assert len(lines) == 1
        assert "servicebus: canary seen on a connection from 127.0.0.1:" in lines[0]
        assert canary not in lines[0]
        assert "servicebus: canary seen on a connection from 127.0.0.1:" in process.stderr_tail()
