"""functionTimeout in the local host behaves as in Azure's: the whole worker restarts (every invocation in
flight is abandoned, not only the slow one) and the app is imported afresh. See emulators/host/_worker.py
for the source (Azure/azure-functions-host, WebScriptHostExceptionHandler.OnTimeoutExceptionAsync)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from emulators import RunningProcess, start
from emulators.servicebus import connection_string
from tests.polling import json_lines, wait_for

APP_DIR = Path(__file__).parent / "timeout_app"
TIMEOUT = 6.0  # timeout_app/host.json's functionTimeout
QUEUE = "timeouts"


class TimeoutRun:
    def __init__(self, tmp: Path) -> None:
        self.service_bus = start("emulators.servicebus", "--queue", f"{QUEUE}:maxDeliveryCount=2")
        self.conn = connection_string(self.service_bus.url)
        self.events_file = tmp / "events.jsonl"
        self.events_file.touch()
        settings = tmp / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        self.host: RunningProcess | None = None
        self.host = start(
            "emulators.host",
            *("--app-dir", str(APP_DIR), "--settings", str(settings)),
            env={
                "ServiceBusConnection": self.conn,
                "TIMEOUT_QUEUE": QUEUE,
                "HOST_TEST_EVENTS": str(self.events_file),
            },
            ready_timeout=60,
        )
        self.client = ServiceBusClient.from_connection_string(self.conn)

    def close(self) -> None:
        self.client.close()
        if self.host is not None:
            self.host.stop(timeout=30)
        self.service_bus.stop(timeout=30)

    def send(self, message_id: str, body: dict[str, Any]) -> None:
        with self.client.get_queue_sender(QUEUE) as sender:
            sender.send_messages(ServiceBusMessage(json.dumps(body), message_id=message_id))

    def events(self, event: str, message_id: str | None = None) -> list[dict[str, Any]]:
        found = json_lines(self.events_file)
        return [e for e in found if e["event"] == event and message_id in (None, e.get("messageId"))]

    def stats(self) -> dict[str, int]:
        assert self.host is not None
        result: dict[str, int] = httpx.get(f"{self.host.url}/_host/stats", timeout=5).json()
        return result


@pytest.fixture
def run(tmp_path: Path) -> Iterator[TimeoutRun]:
    running = TimeoutRun(tmp_path)
    try:
        yield running
    finally:
        running.close()


def test_a_function_timeout_restarts_the_worker_abandoning_every_invocation_in_flight(
    run: TimeoutRun,
) -> None:
    """A slow invocation passes functionTimeout: it and a concurrent one that would have finished in time
    are both abandoned (delivered again), and the app module is imported again in the same host."""
    run.send("slow", {"action": "sleep", "seconds": 600})
    (slow,) = wait_for(lambda: run.events("start", "slow"), "the slow invocation's start")
    # The other one must be in flight when the slow one times out, yet end within its own timeout: it
    # starts at least 1.5 s after the slow one and runs until 1 s past the slow one's deadline.
    wait_for(lambda: time.time() >= slow["time"] + 1.5, "the slow invocation to have run 1.5 s")
    run.send("in-time", {"action": "until", "time": slow["time"] + TIMEOUT + 1})
    (other,) = wait_for(lambda: run.events("start", "in-time"), "the other invocation's start")
    assert other["time"] < slow["time"] + TIMEOUT, "the other invocation started too late to be in flight"

    ended = wait_for(lambda: run.events("end", "in-time"), "the other invocation's end", timeout=60)
    assert [e["deliveryCount"] for e in ended] == [2]  # the first delivery was abandoned by the restart
    assert [e["deliveryCount"] for e in run.events("start", "in-time")] == [1, 2]

    def dead_lettered() -> list[Any]:
        with run.client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            return list(dlq.peek_messages(max_message_count=10))

    (dead,) = wait_for(dead_lettered, "the slow message's dead letter", timeout=60)
    assert dead.message_id == "slow"
    assert run.events("end", "slow") == []
    stats = run.stats()
    assert stats["workerRestarts"] == 2  # one per delivery of the slow message
    assert stats["abandoned"] == 3  # abandoned at once, not left to their locks' expiry

    imports = run.events("import")
    assert run.host is not None
    assert [e["pid"] for e in imports] == [run.host.process.pid] * 3  # at start, then after each restart
    assert imports[1]["time"] >= slow["time"] + TIMEOUT
    assert "A function timeout has occurred" in run.host.stderr_tail()
