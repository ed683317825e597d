"""function_app under the local Functions host, wired to the emulators, for one end-to-end test.

A test module starts its own Service Bus emulator with `queue_specs(...)` (a deletion queue per test,
dead letters forwarded to its own failure queue, duplicate detection on), then one `Deployment` per test:
a host process with the test's settings, and ways to read back what a user would see: the function's
structured log records, the host's counters, the queues and the failure records.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusSubQueue,
)

from emulators import RunningProcess, start
from emulators.demo import causal_order
from emulators.servicebus import connection_string
from tests.conftest import BatchHandle, IdentityHandle
from tests.polling import json_lines, wait_for

__all__ = ["Deployment", "queue_specs"]

ROOT = Path(__file__).resolve().parents[2]


def queue_specs(
    prefix: str,
    options: dict[str, str],
    *,
    unforwarded: frozenset[str] = frozenset(),
    failed_options: dict[str, str] | None = None,
) -> list[str]:
    """`--queue` arguments: per name, `<prefix>-<name>` with `options` and `<prefix>-<name>-failed`
    (duplicate detection on, plus `failed_options[name]`); dead letters are forwarded to the latter unless
    the name is `unforwarded`."""
    specs: list[str] = []
    for name, queue_options in options.items():
        failed = f"{prefix}-{name}-failed"
        forward = "" if name in unforwarded else f",forwardDeadLetteredMessagesTo={failed}"
        extra = (failed_options or {}).get(name)
        specs += ["--queue", f"{prefix}-{name}:{queue_options}{forward}"]
        specs += ["--queue", f"{failed}:duplicateDetectionWindow=600" + (f",{extra}" if extra else "")]
    return specs


class Deployment:
    """function_app under the local host, wired to the emulators, for one test."""

    def __init__(
        self,
        queue: str,
        service_bus: RunningProcess,
        batch: BatchHandle,
        identity: IdentityHandle,
        tmp: Path,
        *,
        dead_letter_queue: str | None = None,
        extra_settings: dict[str, str] | None = None,
        telemetry: bool = False,
    ) -> None:
        self.service_bus = service_bus
        self.batch = batch
        self.identity = identity
        self.conn = connection_string(service_bus.url)
        self.queue = queue
        self.failed = f"{queue}-failed"
        self.log_file = tmp / "host-log.jsonl"
        self.telemetry_file = tmp / "telemetry.jsonl"
        settings = tmp / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        env = {
            "BATCH_ENDPOINT": batch.url,
            "DELETION_QUEUE": self.queue,
            "DEAD_LETTER_QUEUE": dead_letter_queue or self.failed,
            "ServiceBusConnection": self.conn,
            "IDENTITY_ENDPOINT": identity.url,
            "IDENTITY_HEADER": identity.secret,
            "RETRY_DELAYS": "1,1",
            "QUICK_RETRY_DELAYS": "0.05,0.05",
            "VERIFY_DELETION_AFTER": "0",  # on only where a test is about verification
            **(extra_settings or {}),
        }
        self.host = start(
            "emulators.host",
            "--app-dir",
            str(ROOT),
            "--settings",
            str(settings),
            "--log-file",
            str(self.log_file),
            *(("--telemetry", str(self.telemetry_file)) if telemetry else ()),
            env=env,
            ready_timeout=60,
        )
        self.client = ServiceBusClient.from_connection_string(self.conn)

    def send(self, body: dict[str, Any] | bytes, message_id: str | None = None, **kwargs: Any) -> str:
        """Send one message; its id."""
        message_id = message_id or str(uuid.uuid4())
        raw = body if isinstance(body, bytes) else json.dumps(body)
        with self.client.get_queue_sender(self.queue) as sender:
            sender.send_messages(
                ServiceBusMessage(raw, message_id=message_id, content_type="application/json", **kwargs)
            )
        return message_id

    def send_all(self, *bodies: dict[str, Any]) -> list[str]:
        """Send one message per body (in one batch); their message ids."""
        ids = [str(uuid.uuid4()) for _ in bodies]
        messages = [
            ServiceBusMessage(json.dumps(body), message_id=message_id, content_type="application/json")
            for body, message_id in zip(bodies, ids, strict=True)
        ]
        with self.client.get_queue_sender(self.queue) as sender:
            sender.send_messages(messages)
        return ids

    def outcomes(self) -> list[dict[str, Any]]:
        """The function's structured log records (customDimensions), in order."""
        return [entry["customDimensions"] for entry in self.log_entries()]

    def wait_outcomes(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """At least `count` records, in causal order (`emulators.demo.causal_order`): an invocation logs
        after it schedules its retry copy or verification, and on a busy machine that message's record can
        reach the log first."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.outcomes()
            return sorted(found, key=causal_order) if len(found) >= count else None

        return wait_for(enough, f"{count} outcome(s)", timeout)

    def log_entries(self) -> list[dict[str, Any]]:
        """The function's log records whole: the text (`message`) and the fields (`customDimensions`)."""
        return [e for e in json_lines(self.log_file) if e["logger"] == "delete_job"]

    def telemetry(self, kind: str) -> list[dict[str, Any]]:
        """What the app exported through OpenTelemetry (the host's ``--telemetry``): ``span``,
        ``log record`` or ``metric`` items, as the SDK's ``to_json`` renders them."""
        return [item["item"] for item in json_lines(self.telemetry_file) if item["kind"] == kind]

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.host.url}/_host/stats", timeout=5).json()
        return result

    def settled(self) -> bool:
        """Nothing in flight, and every received message completed or abandoned."""
        stats = self.stats()
        return stats.get("inFlight", 0) == 0 and stats.get("received", 0) == stats.get(
            "completed", 0
        ) + stats.get("abandoned", 0)

    def nothing_left(self) -> bool:
        """The deletion queue and its dead letters are empty, and nothing is being processed."""
        return (
            self.stats().get("inFlight", 0) == 0
            and self.peek(self.queue) == []
            and self.peek(self.queue, ServiceBusSubQueue.DEAD_LETTER) == []
        )

    def peek(
        self, queue: str, sub_queue: ServiceBusSubQueue | None = None
    ) -> list[ServiceBusReceivedMessage]:
        with self.client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
            return list(receiver.peek_messages(max_message_count=100))

    def records(self) -> list[dict[str, Any]]:
        """The failure records' bodies."""
        return [json.loads(b"".join(m.body)) for m in self.peek(self.failed)]

    def job_state(self, job_id: str) -> str | None:
        job = self.batch.control.get_job(job_id)
        return None if job is None else str(job["state"])

    def describe(self) -> str:
        """The host's counters and its last stderr lines, for a failure report."""
        try:
            stats = json.dumps(self.stats(), sort_keys=True)
        except httpx.HTTPError as exc:
            stats = f"(no answer: {type(exc).__name__}: {exc})"
        exit_code = self.host.process.poll()
        state = "running" if exit_code is None else f"exited with {exit_code}"
        return f"host {state}; stats {stats}\n{self.host.stderr_tail()}"

    def close(self) -> None:
        self.host.stop(timeout=30)
        self.client.close()
