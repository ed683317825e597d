"""Does the Service Bus emulator keep up with the SDK? Messages/s through the real azure-servicebus client.

Starts ``python -m emulators.servicebus`` with one queue and, with the sync SDK in this process:
  - single sends: ``send_messages(message)`` one at a time
  - batch sends: ``ServiceBusMessageBatch`` of --batch messages
  - peek-lock receive + complete: ``receive_messages(max_message_count=--receive)`` then
    ``complete_message`` for each (prefetch 0, as the function app runs)
  - send -> receive -> complete, one message at a time
Bodies are --size bytes; batches send 5 x --messages (each figure then takes a couple of seconds), and
receive + complete drains all that was sent. After each figure: the emulator's CPU time per message
(from /proc on Linux), which shows whether the SDK or the emulator is the bottleneck.

    .venv/bin/python -m bench.servicebus_throughput [--messages 3000] [--batch 200] [--receive 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceiver,
    ServiceBusSender,
)

from emulators import start
from emulators.servicebus import connection_string

QUEUE = "bench"


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, or None where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(name: str, pid: int, run: Callable[[], int]) -> None:
    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()
    count = run()
    elapsed = time.perf_counter() - started
    cpu_after = _cpu_seconds(pid)
    line = f"{name:<34} {count / elapsed:>8,.0f} messages/s  ({count:,} in {elapsed:.2f} s)"
    if cpu_before is not None and cpu_after is not None and count:
        cpu = cpu_after - cpu_before
        line += f"; emulator CPU {cpu / count * 1e6:.0f} µs/message, {cpu / elapsed:.0%} of a core"
    print(line, flush=True)


def _single_sends(sender: ServiceBusSender, count: int, body: bytes) -> int:
    for _ in range(count):
        sender.send_messages(ServiceBusMessage(body))
    return count


def _batch_sends(sender: ServiceBusSender, count: int, body: bytes, batch_size: int) -> int:
    sent = 0
    while sent < count:
        batch = sender.create_message_batch()
        for _ in range(min(batch_size, count - sent)):
            batch.add_message(ServiceBusMessage(body))
        sender.send_messages(batch)
        sent += len(batch)
    return sent


def _receive_and_complete(receiver: ServiceBusReceiver, count: int, batch_size: int) -> int:
    received = 0
    while received < count:
        messages = receiver.receive_messages(
            max_message_count=min(batch_size, count - received), max_wait_time=5
        )
        if not messages:
            raise RuntimeError(f"queue ran dry after {received} messages")
        for message in messages:
            receiver.complete_message(message)
        received += len(messages)
    return received


def _round_trips(sender: ServiceBusSender, receiver: ServiceBusReceiver, count: int, body: bytes) -> int:
    for _ in range(count):
        sender.send_messages(ServiceBusMessage(body))
        [message] = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        receiver.complete_message(message)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages per figure (default 3000)")
    parser.add_argument("--batch", type=int, default=200, help="messages per batch send (default 200)")
    parser.add_argument(
        "--receive", type=int, default=100, help="max_message_count per receive (default 100)"
    )
    parser.add_argument("--size", type=int, default=256, help="body bytes (default 256)")
    args = parser.parse_args()
    body = os.urandom(args.size)
    count = args.messages
    with (
        start("emulators.servicebus", "--queue", QUEUE) as process,
        ServiceBusClient.from_connection_string(connection_string(process.url)) as client,
        client.get_queue_sender(QUEUE) as sender,
        client.get_queue_receiver(QUEUE) as receiver,
    ):
        pid = process.process.pid
        _single_sends(sender, 50, body)  # warm-up
        _receive_and_complete(receiver, 50, args.receive)
        print(f"Service Bus emulator, sync SDK, {args.size}-byte bodies:")
        _measure("single sends", pid, lambda: _single_sends(sender, count, body))
        _measure(
            f"batch sends ({args.batch} per batch)",
            pid,
            lambda: _batch_sends(sender, 5 * count, body, args.batch),
        )
        _measure(
            f"receive ({args.receive}) + complete",
            pid,
            lambda: _receive_and_complete(receiver, 6 * count, args.receive),
        )
        _measure("send -> receive -> complete", pid, lambda: _round_trips(sender, receiver, count // 3, body))


if __name__ == "__main__":
    main()
