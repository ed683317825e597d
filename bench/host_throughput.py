"""Messages/s through the whole local flow: Service Bus emulator -> local host -> function_app -> Batch.

Starts the Service Bus emulator, the Batch emulator (autoCreate, so every delete is a 202) and the
identity endpoint; sends N deletion messages in batches to the queue, then starts ``python -m
emulators.host`` running the real function_app and measures from its ready line until it has settled all
of them, with the CPU time each process used meanwhile (the host runs the function in-process: its CPU is
the client's). The queue is filled first so that the figure is the host's, not the sender's (sending at
the same time, the sender took a core and the host's rate halved). Before the host starts, the same
emulator's own pace: N messages received and completed by the sync SDK in this process (batches of 100,
prefetch 0), the rate the host is measured against (``emulatorPerSecond``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from emulators import start
from emulators.control import BatchEmulator
from emulators.servicebus import connection_string

ROOT = Path(__file__).resolve().parent.parent


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


_BATCH = 1000  # messages per send: a batch the SDK fills to its size limit, the emulator refuses as too large


def _send(sender: ServiceBusSender, messages: int) -> None:
    """Deletion requests in batches of ``_BATCH``."""
    for first in range(0, messages, _BATCH):
        batch_of = sender.create_message_batch()
        for i in range(first, min(first + _BATCH, messages)):
            batch_of.add_message(
                ServiceBusMessage(json.dumps({"jobId": f"job-{i}"}), content_type="application/json")
            )
        sender.send_messages(batch_of)


def _settled(url: str) -> int:
    stats = httpx.get(f"{url}/_host/stats", timeout=10).json()
    return int(stats.get("completed", 0) + stats.get("abandoned", 0))


def emulator_pace(conn: str, queue: str, messages: int) -> float:
    """Messages/s the emulator receives and completes for the sync SDK alone (after sending them)."""
    with ServiceBusClient.from_connection_string(conn) as client:
        with client.get_queue_sender(queue) as sender:
            _send(sender, messages)
        with client.get_queue_receiver(queue) as receiver:
            started = time.perf_counter()
            done = 0
            while done < messages:
                batch = receiver.receive_messages(
                    max_message_count=min(100, messages - done), max_wait_time=5
                )
                if not batch:
                    raise RuntimeError(f"the queue ran dry after {done} of {messages} messages")
                for message in batch:
                    receiver.complete_message(message)
                done += len(batch)
            return messages / (time.perf_counter() - started)


def run(messages: int, concurrency: int, latency_ms: int, tmp: Path) -> dict[str, float]:
    """Figures of one run: messages/s, and for "host", "serviceBus" and "batch" the process's CPU
    seconds over the run (``<name>Cpu``); ``emulatorPerSecond``: the emulator's own pace."""
    with ExitStack() as stack:
        service_bus = stack.enter_context(
            start(
                "emulators.servicebus",
                "--queue",
                "bench-deletions:lockDuration=60",
                "--queue",
                "bench-failed:duplicateDetectionWindow=600",
                "--queue",
                "bench-pace",
            )
        )
        pace = emulator_pace(connection_string(service_bus.url), "bench-pace", messages)
        batch = stack.enter_context(start("emulators.batch", "--latency-ms", str(latency_ms)))
        with BatchEmulator(batch.url) as control:
            control.configure(autoCreate=True)
        identity = stack.enter_context(start("emulators.identity", env={"IDENTITY_HEADER": "bench"}))
        settings = tmp / "local.settings.json"
        settings.write_text(json.dumps({"Values": {}}))
        conn = connection_string(service_bus.url)
        sending = time.perf_counter()
        with (
            ServiceBusClient.from_connection_string(conn) as client,
            client.get_queue_sender("bench-deletions") as sender,
        ):
            _send(sender, messages)
        send_seconds = time.perf_counter() - sending
        host = stack.enter_context(
            start(
                "emulators.host",
                "--app-dir",
                str(ROOT),
                "--settings",
                str(settings),
                "--max-concurrent-calls",
                str(concurrency),
                env={
                    "BATCH_ENDPOINT": batch.url,
                    "DELETION_QUEUE": "bench-deletions",
                    "DEAD_LETTER_QUEUE": "bench-failed",
                    "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
                    "ServiceBusConnection": conn,
                    "IDENTITY_ENDPOINT": identity.url,
                    "IDENTITY_HEADER": "bench",
                },
                ready_timeout=60,
            )
        )
        pids = {"host": host.process.pid, "serviceBus": service_bus.process.pid, "batch": batch.process.pid}
        cpu_before = {name: _cpu(pid) for name, pid in pids.items()}
        started = time.perf_counter()  # the ready line: every trigger is receiving
        deadline = time.monotonic() + 300
        while _settled(host.url) < messages and time.monotonic() < deadline:
            time.sleep(0.05)
        done = time.perf_counter()
        cpu = {f"{name}Cpu": _cpu(pid) - cpu_before[name] for name, pid in pids.items()}
        stats = httpx.get(f"{host.url}/_host/stats", timeout=10).json()
        return {
            **cpu,
            "messages": messages,
            "sendSeconds": send_seconds,
            "totalSeconds": done - started,
            "perSecond": messages / (done - started),
            "emulatorPerSecond": pace,
            "completed": stats.get("completed", 0),
            "abandoned": stats.get("abandoned", 0),
        }


def main() -> None:
    import tempfile  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--max-concurrent-calls", type=int, default=64)
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.messages, args.max_concurrent_calls, args.latency_ms, Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
