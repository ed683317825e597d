"""The local host invokes a function as Azure's host and Python worker do: the body and the trigger metadata
in the shapes the host's RPC carries, decoded by azure-functions' own ``ServiceBusMessageInConverter``
(the rules and their sources: ``emulators/host/_messages.py``).

Each message goes to the host's queue and, the same, to a twin queue that the test receives from itself:
what the function recorded must equal what the converter makes of the twin, for every shape a producer
can send, and the tricky shapes must come out as Azure delivers them.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus._pyamqp.types import TYPE, VALUE, AMQPTypes
from azure.servicebus.amqp import AmqpAnnotatedMessage, AmqpMessageProperties

from emulators import RunningProcess, start
from emulators.host._messages import BindingError, to_function_message
from emulators.servicebus import connection_string
from tests.polling import json_lines, wait_for

APP_DIR = Path(__file__).parent / "host_app"
QUEUE, SYNC_QUEUE, TWIN = "bind-async", "bind-sync", "bind-twin"
# Differ between the host's copy and the twin: the broker gives each its own.
PER_COPY = {"lockToken", "sequenceNumber", "enqueuedTimeUtc"}


def _host_app() -> ModuleType:
    """host_app/function_app.py, for its ``describe`` (under a name of its own: not the project's app)."""
    spec = importlib.util.spec_from_file_location("host_binding_test_app", APP_DIR / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Deployment:
    """The Service Bus emulator, one host on QUEUE for the whole module, and an SDK client."""

    def __init__(self, tmp: Path) -> None:
        self._stack: list[Any] = []
        self.service_bus: RunningProcess = start(
            "emulators.servicebus",
            *("--queue", f"{QUEUE}:maxDeliveryCount=2", "--queue", SYNC_QUEUE, "--queue", TWIN),
        )
        self._stack.append(self.service_bus)
        self.conn = connection_string(self.service_bus.url)
        self.events_file = tmp / "events.jsonl"
        self.events_file.touch()
        settings = tmp / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        self.host = start(
            "emulators.host",
            *("--app-dir", str(APP_DIR), "--settings", str(settings)),
            env={
                "ServiceBusConnection": self.conn,
                "ASYNC_QUEUE": QUEUE,
                "SYNC_QUEUE": SYNC_QUEUE,
                "HOST_TEST_EVENTS": str(self.events_file),
            },
            ready_timeout=60,
        )
        self._stack.append(self.host)
        self.client = ServiceBusClient.from_connection_string(self.conn)
        self.describe = _host_app().describe

    def close(self) -> None:
        self.client.close()
        for process in reversed(self._stack):
            process.stop(timeout=30)

    def send(self, message: ServiceBusMessage | AmqpAnnotatedMessage) -> None:
        """The same message to the host's queue and to the twin."""
        for queue in (QUEUE, TWIN):
            with self.client.get_queue_sender(queue) as sender:
                sender.send_messages(message)

    def seen(self, message_id: str) -> dict[str, Any]:
        """What the function recorded for this message's first invocation."""

        def start_event() -> dict[str, Any] | None:
            events = json_lines(self.events_file)
            return next((e for e in events if e["event"] == "start" and e["messageId"] == message_id), None)

        return wait_for(start_event, f"the function's start event for {message_id}")

    def converted(self, message_id: str, data_type: str | None = None) -> dict[str, Any]:
        """What the worker's converter makes of the twin (received peek-lock, converted, then completed),
        described as the function describes what it got."""
        with self.client.get_queue_receiver(TWIN) as receiver:
            while batch := receiver.receive_messages(max_message_count=50, max_wait_time=5):
                for message in batch:
                    if message.message_id != message_id:  # another test's
                        receiver.abandon_message(message)
                        continue
                    described = self.describe(to_function_message(message, data_type))
                    receiver.complete_message(message)
                    result: dict[str, Any] = json.loads(json.dumps(described, default=str))
                    return result
        pytest.fail(f"the twin of {message_id} is not on {TWIN}")

    def drain_twin(self, message_id: str) -> None:
        """Take the twin of a message that cannot be converted off the twin queue."""
        with self.client.get_queue_receiver(TWIN) as receiver:
            while batch := receiver.receive_messages(max_message_count=50, max_wait_time=5):
                for message in batch:
                    if message.message_id != message_id:  # another test's
                        receiver.abandon_message(message)
                        continue
                    receiver.complete_message(message)
                    return

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.host.url}/_host/stats", timeout=5).json()
        return result


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    running = Deployment(tmp_path_factory.mktemp("host-binding"))
    try:
        yield running
    finally:
        running.close()


def _same_as_converter(seen: dict[str, Any], converted: dict[str, Any]) -> None:
    function_saw = {key: seen[key] for key in converted if key not in PER_COPY}
    assert function_saw == {key: value for key, value in converted.items() if key not in PER_COPY}


def _data(body: bytes, **properties: Any) -> tuple[str, ServiceBusMessage]:
    message_id = str(uuid.uuid4())
    return message_id, ServiceBusMessage(body, message_id=message_id, **properties)


BODIES = {
    "json": b'{"jobId": "job-1"}',
    "bom": b'\xef\xbb\xbf{"jobId": "job-1"}',
    "not-utf8": b'{"jobId": "\xff\xfe"}\x80',
    "empty": b"",
}


@pytest.mark.parametrize("shape", BODIES)
def test_a_data_body_reaches_the_function_as_the_string_binding_makes_it(
    deployment: Deployment, shape: str
) -> None:
    """UTF-8 (a BOM included) arrives unchanged; bytes that are not UTF-8 arrive as U+FFFD (EF BF BD),
    as the extension's string binding makes them (``dataType: binary`` would keep them)."""
    sent = BODIES[shape]
    message_id, message = _data(sent, content_type="application/json")
    deployment.send(message)
    seen = deployment.seen(message_id)
    assert bytes.fromhex(seen["bodyHex"]) == sent.decode("utf-8", errors="replace").encode("utf-8")
    if shape == "not-utf8":
        assert bytes.fromhex(seen["bodyHex"]) != sent
        assert "efbfbd" in seen["bodyHex"]
    else:
        assert bytes.fromhex(seen["bodyHex"]) == sent
    converted = deployment.converted(message_id)
    _same_as_converter(seen, converted)
    wait_for(lambda: deployment.stats().get("completed", 0) >= 1, "a completion")


def test_a_binary_trigger_gets_the_bytes_unchanged(deployment: Deployment) -> None:
    """With ``dataType: binary`` the host sends the body as bytes and the converter keeps them."""
    sent = BODIES["not-utf8"]
    message_id, message = _data(sent)
    with deployment.client.get_queue_sender(TWIN) as sender:
        sender.send_messages(message)
    assert bytes.fromhex(deployment.converted(message_id, "binary")["bodyHex"]) == sent


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (AmqpAnnotatedMessage(value_body="plain text"), b"plain text"),
        (AmqpAnnotatedMessage(data_body=[b'{"jobId": ', b'"job-2"}']), b'{"jobId": "job-2"}'),
    ],
    ids=["value-string", "two-data-sections"],
)
def test_a_string_value_body_and_data_sections_reach_the_function(
    deployment: Deployment, body: AmqpAnnotatedMessage, expected: bytes
) -> None:
    message_id = str(uuid.uuid4())
    body.properties = AmqpMessageProperties(message_id=message_id)
    deployment.send(body)
    seen = deployment.seen(message_id)
    assert bytes.fromhex(seen["bodyHex"]) == expected
    _same_as_converter(seen, deployment.converted(message_id))


def test_a_value_body_that_is_not_a_string_fails_the_binding_and_is_dead_lettered(
    deployment: Deployment,
) -> None:
    """Azure's string binding refuses an AMQP value other than a string: the invocation fails before the
    function runs, the message is abandoned, and dead-lettered at the max delivery count (2 here)."""
    message_id = str(uuid.uuid4())
    failed_before = deployment.stats().get("failed", 0)
    properties = AmqpMessageProperties(message_id=message_id)
    deployment.send(AmqpAnnotatedMessage(value_body=42, properties=properties))

    def dead_lettered() -> list[Any]:
        with deployment.client.get_queue_receiver(QUEUE, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            return [m for m in dlq.peek_messages(max_message_count=50) if m.message_id == message_id]

    (dead,) = wait_for(dead_lettered, "the dead letter")
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert deployment.stats()["failed"] >= failed_before + 2
    assert all(event["messageId"] != message_id for event in json_lines(deployment.events_file))
    deployment.drain_twin(message_id)


def test_a_binary_trigger_refuses_a_value_body(deployment: Deployment) -> None:
    """With ``dataType: binary`` (the project's trigger) even a string value body fails the binding, as
    Azure's byte-array binding reads ``ServiceBusReceivedMessage.Body``, which only a data body has."""
    message_id = str(uuid.uuid4())
    properties = AmqpMessageProperties(message_id=message_id)
    with deployment.client.get_queue_sender(TWIN) as sender:
        sender.send_messages(AmqpAnnotatedMessage(value_body="plain text", properties=properties))
    with deployment.client.get_queue_receiver(TWIN) as receiver:
        while batch := receiver.receive_messages(max_message_count=50, max_wait_time=5):
            mine = [m for m in batch if m.message_id == message_id]
            for message in batch:
                if message.message_id != message_id:  # another test's
                    receiver.abandon_message(message)
            if mine:
                with pytest.raises(BindingError, match="value body cannot be bound to bytes"):
                    to_function_message(mine[0], "binary")
                receiver.complete_message(mine[0])
                return
    pytest.fail(f"the twin of {message_id} is not on {TWIN}")


# Every AMQP type a producer can put in an application property, and what the function gets.
PROPERTIES: dict[str, Any] = {
    "string": "x",
    "long": 7,
    "double": 1.5,
    "boolean": True,
    "null": None,
    "uuid": uuid.UUID(int=5),
    "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    "ubyte": {TYPE: AMQPTypes.ubyte, VALUE: 200},
    "ushort": {TYPE: AMQPTypes.ushort, VALUE: 60000},
    "uint": {TYPE: AMQPTypes.uint, VALUE: 4_000_000_000},
    "ulong": {TYPE: AMQPTypes.ulong, VALUE: 2**63},
    "byte": {TYPE: AMQPTypes.byte, VALUE: -5},
    "short": {TYPE: AMQPTypes.short, VALUE: -300},
    "int": {TYPE: AMQPTypes.int, VALUE: -70_000},
    "float": {TYPE: AMQPTypes.float, VALUE: 0.25},
    "symbol": {TYPE: AMQPTypes.symbol, VALUE: b"sym"},
    "bytes": b"ab",  # the Python SDK sends bytes as an AMQP string
}
SEEN_PROPERTIES = {
    "string": "x",
    "long": 7,
    "double": 1.5,
    "boolean": True,
    "null": None,
    "uuid": "00000000-0000-0000-0000-000000000005",  # Newtonsoft writes a Guid as its text
    # Azure: "2026-01-02T03:04:05.678Z"; the Python SDK gives the local host only the milliseconds.
    "timestamp": 1_767_323_045_678,
    "ubyte": 200,
    "ushort": 60000,
    "uint": 4_000_000_000,
    "ulong": 2**63,
    "byte": -5,
    "short": -300,
    "int": -70_000,
    "float": 0.25,
    "symbol": "sym",
    "bytes": "ab",
}


def test_application_properties_of_every_amqp_type_arrive_as_json_values(deployment: Deployment) -> None:
    message_id, message = _data(b"{}", application_properties=PROPERTIES)
    deployment.send(message)
    seen = deployment.seen(message_id)
    assert seen["applicationProperties"] == SEEN_PROPERTIES
    assert seen["userProperties"] == SEEN_PROPERTIES
    _same_as_converter(seen, deployment.converted(message_id))


def test_the_trigger_metadata_is_the_extensions_binding_data(deployment: Deployment) -> None:
    """The keys Azure's Service Bus extension binds for one message, with nulls left out; dates without
    an offset (naive datetimes), no LockedUntil, TimeToLive or State; DeliveryCount 1; Label = Subject."""
    message_id, message = _data(
        b'{"jobId": "job-3"}',
        content_type="application/json",
        correlation_id="corr-1",
        subject="subj",
        reply_to="replies",
        to="someone",
    )
    deployment.send(message)
    seen = deployment.seen(message_id)
    assert seen["metadataKeys"] == sorted(
        [
            "ApplicationProperties",
            "ContentType",
            "CorrelationId",
            "DeliveryCount",
            "EnqueuedTime",
            "EnqueuedTimeUtc",
            "ExpiresAt",
            "ExpiresAtUtc",
            "Label",
            "LockToken",
            "MessageId",
            "ReplyTo",
            "SequenceNumber",
            "Subject",
            "To",
            "UserProperties",
        ]
    )
    assert seen["deliveryCount"] == 1
    fields = (seen["subject"], seen["label"], seen["replyTo"], seen["to"])
    assert fields == ("subj", "subj", "replies", "someone")
    assert datetime.fromisoformat(seen["enqueuedTimeUtc"]).tzinfo is None
    assert seen["expiresAtUtc"] == "9999-12-31T23:59:59.999999"  # no TTL: DateTimeOffset.MaxValue
    assert (seen["lockedUntil"], seen["timeToLive"], seen["state"]) == (None, None, None)
    assert uuid.UUID(seen["lockToken"])
    _same_as_converter(seen, deployment.converted(message_id))
