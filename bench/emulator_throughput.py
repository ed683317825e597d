"""How fast does the Batch emulator answer DELETE /jobs/{id}? (It must never be a benchmark's bottleneck.)

Starts ``python -m emulators.batch`` with autoCreate on and drives it with N keep-alive raw-socket
connections (asyncio streams, uvloop when installed), twice: one request at a time per connection
(as a client would), then with D requests pipelined per connection, which makes the client cheap
enough for the emulator to be the bottleneck: that second figure is the emulator's capacity.
Also prints the emulator's own CPU time per request (from /proc on Linux).

    .venv/bin/python -m bench.emulator_throughput [--connections 16] [--depth 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from emulators import start
from emulators.control import BatchEmulator
from emulators.identity import make_token


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, or None where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(host: str, token: str, job: int) -> bytes:
    return (
        f"DELETE /jobs/bench-{job}?api-version=2025-06-01 HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"client-request-id: {uuid.uuid4()}\r\n"
        "return-client-request-id: true\r\n"
        "ocp-date: Sat, 28 Nov 2026 10:00:00 GMT\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _connection(
    host: str, port: int, token: str, *, depth: int, stop_at: float, statuses: Counter[int]
) -> None:
    """Send ``depth`` requests, read their answers, repeat until ``stop_at``."""
    reader, writer = await asyncio.open_connection(host, port)
    requests = [_request(f"{host}:{port}", token, i) for i in range(64)]
    sent = 0
    while time.perf_counter() < stop_at:
        writer.write(b"".join(requests[(sent + i) % len(requests)] for i in range(depth)))
        sent += depth
        for _ in range(depth):
            head = await reader.readuntil(b"\r\n\r\n")
            statuses[int(head[9:12])] += 1
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()


async def _drive(url: str, connections: int, depth: int, seconds: float) -> Counter[int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    token = make_token("https://batch.core.windows.net/", str(uuid.uuid4()), 3600, int(time.time()))
    statuses: Counter[int] = Counter()
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _connection(host, port, token, depth=depth, stop_at=stop_at, statuses=statuses)
            for _ in range(connections)
        )
    )
    return statuses


def _measure(url: str, pid: int, connections: int, depth: int, seconds: float) -> None:
    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()
    statuses = asyncio.run(_drive(url, connections, depth, seconds))
    elapsed = time.perf_counter() - started
    cpu_after = _cpu_seconds(pid)
    total = sum(statuses.values())
    line = (
        f"{total / elapsed:>8,.0f} DELETE/s  ({connections} connections x {depth} in flight, "
        f"{elapsed:.1f} s, statuses {dict(statuses)})"
    )
    if cpu_before is not None and cpu_after is not None and total:
        cpu = cpu_after - cpu_before
        line += f"; emulator CPU {cpu / total * 1e6:.0f} µs/request, {cpu / elapsed:.0%} of a core"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--depth", type=int, default=16, help="pipelined requests per connection")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415 - optional

        uvloop.install()
    except ImportError:
        pass
    with start("emulators.batch") as process, BatchEmulator(process.url) as control:
        control.configure(autoCreate=True)
        pid = process.process.pid
        asyncio.run(_drive(process.url, 2, 1, 0.5))  # warm-up
        print("Batch emulator, DELETE /jobs/{id} with autoCreate, request log on:")
        _measure(process.url, pid, args.connections, 1, args.seconds)
        _measure(process.url, pid, args.connections, args.depth, args.seconds)
        print(f"{control.stats()['requests']:,} requests logged in all")


if __name__ == "__main__":
    main()
