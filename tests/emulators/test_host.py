"""The local Functions host over the Service Bus emulator, with a test function app (host_app/).

Everything is real: the emulator process, the host process, the azure-servicebus SDK in both, and the
app's functions; the test observes through the SDK, the host's /_host/stats and the app's event file.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from emulators import RunningProcess, start
from emulators.servicebus import connection_string
from tests.polling import json_lines, wait_for

APP_DIR = Path(__file__).parent / "host_app"
T = TypeVar("T")

# Each test gets its own pair of queues, so no state leaks between tests.
PAIRS = ["ok", "fail", "fields", "shutdown", "many", "renew", "renew-many", "sync"]
MAX_CONCURRENT_CALLS = {"renew-many": 64}  # instead of host_app/host.json's 8


def queue_specs() -> list[str]:
    specs = []
    for pair in PAIRS:
        lock = "1.5" if pair.startswith("renew") else "30"
        for kind in ("async", "sync"):
            specs += ["--queue", f"host-{pair}-{kind}:lockDuration={lock},maxDeliveryCount=3"]
    return specs


@pytest.fixture(scope="module")
def service_bus() -> Iterator[RunningProcess]:
    with start("emulators.servicebus", *queue_specs()) as process:
        yield process


class HostRun:
    """One host process for one test, with its queues, its event file and an SDK client."""

    def __init__(self, service_bus: RunningProcess, pair: str, tmp: Path) -> None:
        self.conn = connection_string(service_bus.url)
        self.async_queue, self.sync_queue = f"host-{pair}-async", f"host-{pair}-sync"
        self.events_file = tmp / "events.jsonl"
        self.events_file.touch()
        settings = tmp / "local.settings.json"  # empty: everything comes from the environment
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        self.process = start(
            "emulators.host",
            "--app-dir",
            str(APP_DIR),
            "--settings",
            str(settings),
            *(
                ["--max-concurrent-calls", str(MAX_CONCURRENT_CALLS[pair])]
                if pair in MAX_CONCURRENT_CALLS
                else []
            ),
            env={
                "ServiceBusConnection": self.conn,
                "ASYNC_QUEUE": self.async_queue,
                "SYNC_QUEUE": self.sync_queue,
                "HOST_TEST_EVENTS": str(self.events_file),
            },
            ready_timeout=60,
        )
        self.client = ServiceBusClient.from_connection_string(self.conn)

    def send(self, queue: str, *bodies: dict[str, Any], **props: Any) -> list[str]:
        ids = []
        with self.client.get_queue_sender(queue) as sender:
            batch = sender.create_message_batch()
            for body in bodies:
                message_id = props.pop("message_id", None) or str(uuid.uuid4())
                ids.append(message_id)
                batch.add_message(ServiceBusMessage(json.dumps(body), message_id=message_id, **props))
            sender.send_messages(batch)
        return ids

    def events(self) -> list[dict[str, Any]]:
        return json_lines(self.events_file)

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.process.url}/_host/stats", timeout=5).json()
        return result

    def peek(self, queue: str, sub_queue: ServiceBusSubQueue | None = None) -> list[Any]:
        with self.client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
            return list(receiver.peek_messages(max_message_count=100))

    def close(self) -> None:
        self.process.stop(timeout=30)
        self.client.close()


@pytest.fixture
def host(request: pytest.FixtureRequest, service_bus: RunningProcess, tmp_path: Path) -> Iterator[HostRun]:
    run = HostRun(service_bus, request.param, tmp_path)
    try:
        yield run
    finally:
        run.close()


def on(pair: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("host", [pair], indirect=True)


@on("ok")
def test_success_completes_the_message(host: HostRun) -> None:
    """A function that returns completes its message: it is invoked once and the queue is empty."""
    (message_id,) = host.send(host.async_queue, {"action": "ok"})
    wait_for(lambda: host.stats().get("completed") == 1, "the completion")
    assert [(e["event"], e["messageId"]) for e in host.events()] == [
        ("start", message_id),
        ("end", message_id),
    ]
    assert host.peek(host.async_queue) == []
    assert host.stats()["received"] == 1


@on("fail")
def test_raising_abandons_until_max_delivery_count_then_dead_letters(host: HostRun) -> None:
    """A function that raises sees the message again with DeliveryCount+1, then it is dead-lettered."""
    (message_id,) = host.send(host.async_queue, {"action": "raise"})
    dead = wait_for(
        lambda: host.peek(host.async_queue, ServiceBusSubQueue.DEAD_LETTER), "the dead letter", timeout=30
    )
    starts = [e["deliveryCount"] for e in host.events() if e["event"] == "start"]
    assert starts == [1, 2, 3]  # maxDeliveryCount=3; the host reports 1 for the first delivery
    assert dead[0].message_id == message_id
    assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    assert host.stats()["abandoned"] == 3


@on("fields")
def test_the_function_gets_the_fields_the_host_fills(host: HostRun) -> None:
    """Body, ids, content type, properties, times and lock data reach the function as the host fills them."""
    before = time.time()
    (message_id,) = host.send(
        host.async_queue,
        {"action": "ok", "n": 1},
        message_id="fields-1",
        correlation_id="corr-9",
        content_type="application/json",
        subject="subj",
        application_properties={"origin": "test", "attempt": 2, "flag": True},
    )
    wait_for(lambda: host.stats().get("completed") == 1, "the completion")
    start_event = next(e for e in host.events() if e["event"] == "start")
    assert message_id == start_event["messageId"] == "fields-1"
    assert json.loads(start_event["body"]) == {"action": "ok", "n": 1}
    assert start_event["contentType"] == "application/json"
    assert start_event["correlationId"] == "corr-9"
    assert start_event["subject"] == "subj"
    assert start_event["applicationProperties"] == {"origin": "test", "attempt": 2, "flag": True}
    assert start_event["userProperties"] == start_event["applicationProperties"]
    assert start_event["deliveryCount"] == 1
    assert start_event["isServiceBusMessage"] is True
    assert isinstance(start_event["sequenceNumber"], int)
    assert uuid.UUID(start_event["lockToken"])
    from datetime import UTC, datetime  # noqa: PLC0415

    # As on Azure: EnqueuedTimeUtc comes over the host's RPC without an offset, so the worker's converter
    # makes it a naive datetime (in UTC); LockedUntil is not in the trigger metadata at all (see
    # emulators/host/_messages.py for both sources).
    enqueued = datetime.fromisoformat(start_event["enqueuedTimeUtc"]).replace(tzinfo=UTC).timestamp()
    assert before - 2 < enqueued < time.time() + 2
    assert start_event["lockedUntil"] is None


@on("sync")
def test_sync_functions_run_too(host: HostRun) -> None:
    """A plain `def` function runs in the thread pool with the same settlement rules."""
    ok, bad = host.send(host.sync_queue, {"action": "ok"}, {"action": "raise"})
    wait_for(
        lambda: host.peek(host.sync_queue, ServiceBusSubQueue.DEAD_LETTER), "the dead letter", timeout=30
    )
    events = host.events()
    assert [e["event"] for e in events if e["messageId"] == ok] == ["start", "end"]
    assert [e["deliveryCount"] for e in events if e["messageId"] == bad and e["event"] == "start"] == [
        1,
        2,
        3,
    ]


@on("many")
def test_many_messages_run_concurrently_up_to_max_concurrent_calls(host: HostRun) -> None:
    """40 slow messages run 8 at a time (host.json maxConcurrentCalls), never more, all completed."""
    host.send(host.async_queue, *({"action": "sleep", "seconds": 0.3} for _ in range(40)))
    wait_for(lambda: host.stats().get("completed") == 40, "40 completions", timeout=60)
    level, peak = 0, 0
    for event in sorted(host.events(), key=lambda e: (e["time"], e["event"] == "start")):
        level += {"start": 1, "end": -1}[event["event"]]
        peak = max(peak, level)
    assert peak == 8
    assert host.peek(host.async_queue) == []


@on("renew")
def test_lock_is_renewed_while_the_function_runs(host: HostRun) -> None:
    """A function running past the 1.5 s lock keeps its message: no second delivery, then completed."""
    (message_id,) = host.send(host.async_queue, {"action": "sleep", "seconds": 4})
    wait_for(lambda: host.stats().get("completed") == 1, "the completion", timeout=30)
    starts = [e for e in host.events() if e["event"] == "start"]
    assert [(e["messageId"], e["deliveryCount"]) for e in starts] == [(message_id, 1)]
    assert host.stats().get("settleFailed", 0) == 0


@on("renew-many")
def test_locks_of_64_concurrent_invocations_are_renewed(host: HostRun) -> None:
    """64 functions running past their 1.5 s locks all keep their messages: each runs once and is completed.
    (Found by the chaos run: the SDK's AutoLockRenewer sent the renewals at once, two of them went out with
    the same AMQP delivery-id, the broker closed the connection for it, and no message was settled.)"""
    ids = host.send(host.async_queue, *({"action": "sleep", "seconds": 4} for _ in range(64)))
    wait_for(lambda: host.stats().get("completed") == 64, "64 completions", timeout=60)
    starts = [(e["messageId"], e["deliveryCount"]) for e in host.events() if e["event"] == "start"]
    assert sorted(starts) == sorted((message_id, 1) for message_id in ids)
    assert host.stats().get("settleFailed", 0) == 0
    assert host.peek(host.async_queue) == []


@on("shutdown")
def test_in_flight_messages_finish_on_shutdown(host: HostRun) -> None:
    """SIGTERM stops receiving but lets the running invocation finish and complete its message."""
    (message_id,) = host.send(host.async_queue, {"action": "sleep", "seconds": 2})
    wait_for(lambda: any(e["event"] == "start" for e in host.events()), "the invocation to start")
    host.process.process.send_signal(signal.SIGTERM)
    assert host.process.process.wait(timeout=30) == 0
    assert [(e["event"], e["messageId"]) for e in host.events()] == [
        ("start", message_id),
        ("end", message_id),
    ]
    assert host.peek(host.async_queue) == []  # completed, not abandoned
