"""Which transport goes under httpx? Per-request CPU and throughput of `BatchClient.delete_job`.

Runs, in this one process tree and against the Batch emulator (autoCreate, 0 ms latency):
  - BatchClient over httpx's default transport (httpcore)
  - BatchClient over aiohttp's pool (httpx-aiohttp), the one the project ships
  - httpx.AsyncClient over the same aiohttp pool (what BatchClient avoids: it doubles the CPU)
  - a bare aiohttp ClientSession sending the same request (the reference for "how cheap can it be")
each at 16 and 64 concurrent requests. CPU is this process's CPU time per request (the emulator runs in
its own process). Medians of --repeats runs. Usage: python -m bench.transport [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import httpx

from emulators._launch import start
from emulators.control import BatchEmulator
from shared.batch_client import BatchClient, DeleteJobOptions, build_request_parts, default_transport


@dataclass
class Figure:
    name: str
    concurrency: int
    per_second: float
    cpu_us: float


def fake_jwt() -> str:
    import base64  # noqa: PLC0415
    import json  # noqa: PLC0415

    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"aud": "https://batch.core.windows.net/", "exp": int(time.time()) + 86400, "oid": "bench"}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


async def drive(send: Callable[[int], Awaitable[None]], total: int, concurrency: int) -> tuple[float, float]:
    """Run `total` sends with `concurrency` workers; return (requests/s, CPU µs per request)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await send(i)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return total / wall, cpu / total * 1e6


async def bench_batch_client(
    url: str, token: str, transport_name: str, total: int, concurrency: int
) -> tuple[float, float]:
    async def get_token() -> str:
        return token

    transport = (
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=512))
        if transport_name == "httpcore"
        else default_transport(512)
    )
    client = BatchClient(url, get_token, transport=transport)
    try:
        for i in range(concurrency):  # warm the pool
            await client.delete_job(f"warm-{i}")

        async def send(i: int) -> None:
            response = await client.delete_job(f"job-{i}")
            assert response.status == 202, response

        return await drive(send, total, concurrency)
    finally:
        await client.aclose()


async def bench_async_client(url: str, token: str, total: int, concurrency: int) -> tuple[float, float]:
    """The same request through httpx.AsyncClient over the same aiohttp transport (not shipped)."""
    async with httpx.AsyncClient(transport=default_transport(512), trust_env=False) as client:

        async def send(i: int) -> None:
            path, query, headers = build_request_parts(
                f"job-{i}", DeleteJobOptions(), api_version="2025-06-01"
            )
            headers["authorization"] = "Bearer " + token
            async with client.stream("DELETE", url + path, params=query, headers=headers) as response:
                await response.aread()
                assert response.status_code == 202

        for i in range(concurrency):
            await send(i)
        return await drive(send, total, concurrency)


async def bench_raw_aiohttp(url: str, token: str, total: int, concurrency: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def send(i: int) -> None:
            headers = {
                "client-request-id": str(uuid.uuid4()),
                "return-client-request-id": "true",
                "ocp-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                "authorization": "Bearer " + token,
                "content-length": "0",
            }
            async with session.delete(
                f"{url}/jobs/job-{i}", params={"api-version": "2025-06-01"}, headers=headers
            ) as response:
                await response.read()
                assert response.status == 202

        for i in range(concurrency):
            await send(i)
        return await drive(send, total, concurrency)


def median_figure(name: str, concurrency: int, runs: list[tuple[float, float]]) -> Figure:
    return Figure(
        name,
        concurrency,
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
    )


async def main_async(total: int, repeats: int) -> list[Figure]:
    token = fake_jwt()
    figures: list[Figure] = []
    with start("emulators.batch") as emulator:
        control = BatchEmulator(emulator.url)
        control.configure(autoCreate=True)
        for concurrency in (16, 64):
            cases: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
                "BatchClient + httpx default transport (httpcore)": functools.partial(
                    bench_batch_client, emulator.url, token, "httpcore", total, concurrency
                ),
                "BatchClient + aiohttp transport (shipped)": functools.partial(
                    bench_batch_client, emulator.url, token, "aiohttp", total, concurrency
                ),
                "httpx.AsyncClient + aiohttp transport (not shipped)": functools.partial(
                    bench_async_client, emulator.url, token, total, concurrency
                ),
                "bare aiohttp ClientSession (reference)": functools.partial(
                    bench_raw_aiohttp, emulator.url, token, total, concurrency
                ),
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
            for _ in range(repeats):  # interleave so drift hits every case alike
                for name, case in cases.items():
                    control.clear_requests()
                    results[name].append(await case())
            figures.extend(median_figure(n, concurrency, r) for n, r in results.items())
    return figures


def render(figures: list[Figure]) -> str:
    lines = [
        "| client | concurrent | deletes/s | CPU µs/delete |",
        "|---|---|---|---|",
    ]
    for f in figures:
        lines.append(f"| {f.name} | {f.concurrency} | {f.per_second:,.0f} | {f.cpu_us:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(render(asyncio.run(main_async(args.requests, args.repeats))))


if __name__ == "__main__":
    main()
