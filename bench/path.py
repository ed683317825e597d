"""Sections 1-3: the function's whole path per message, next to its peers sending the same DELETE.

The whole path is ``Processor.process`` on a ``Received`` with a valid JSON body: parse it, get the token
(the real azure-identity ManagedIdentityCredential against the identity endpoint, behind the app's
single-flight cache), DELETE through ``BatchClient``, decide, and one structured log record that a
``logging.StreamHandler`` formats as a JSON line (the local host's ``JsonLinesFormatter``, customDimensions
and all) and writes to ``os.devnull``. The peers send the same DELETE with the same headers (a token
fetched once): a bare aiohttp ``ClientSession``, the floor (asyncio streams, one keep-alive connection per
concurrent sender, hand-written HTTP/1.1), ``httpx.AsyncClient`` with its default transport (httpcore) and
over ``shared.aiohttp_transport``, and the azure-batch SDK's aio client, both its single request
(``_delete_job_internal``, what ``begin_delete_job`` sends first) and the public ``begin_delete_job(...)``
awaited to completion (it polls GET). Beside ``BatchClient`` alone, the same client with the maintained
httpx-aiohttp package's transport in place of ours: the two candidates for what sits under httpx.

Every client runs in a child process of its own (``python -m bench.path worker --case ...``) on the default
asyncio loop, as the Functions worker does; CPU is that process's CPU time per message, and the Batch
emulator's CPU over the same window is read from its pid. ``python -m bench`` runs all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import gc
import itertools
import json
import logging
import math
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench.measure import (
    API_VERSION,
    Services,
    Size,
    app_env,
    child_env,
    cpu_seconds,
    median,
    run_child,
    telemetry_env,
)

__all__ = [
    "CASES",
    "Breakdown",
    "LatencyFigure",
    "PathFigure",
    "SoakFigure",
    "measure_latency",
    "measure_peers",
    "soak",
    "where_cpu_goes",
]

# Case key -> what the report calls it.
CASES = {
    "whole-path": "whole path: Processor.process (parse, token, BatchClient DELETE, decide, JSON log record)",
    "whole-path-telemetry": "the whole path with telemetry on (shared/telemetry.py: Azure Monitor exporters"
    " uploading to the ingestion stand-in, which accepts them; the default sampling: every failure, about"
    " 5 successes a second)",
    "whole-path-telemetry-all": "the same with OTEL_TRACES_SAMPLER=always_on: every success's spans and"
    " record exported too (not a target: what always_on costs)",
    "batch-client": "BatchClient.delete_job alone (httpx over shared.aiohttp_transport, a fixed token)",
    "batch-client-httpx-aiohttp": "BatchClient with httpx-aiohttp's AiohttpTransport in place of ours",
    "httpx-ours": "httpx.AsyncClient over shared.aiohttp_transport",
    "aiohttp": "raw aiohttp ClientSession",
    "floor": "floor: asyncio streams, keep-alive connections, hand-written HTTP/1.1",
    "httpx": "httpx.AsyncClient, default transport (httpcore)",
    "azure-batch": "azure-batch aio, one request (`_delete_job_internal`)",
    "azure-batch-poller": "azure-batch aio, `begin_delete_job()` + `result()` (DELETE, then GET)",
}
_USER_AGENT = "batch-job-deleter-bench/0.1 (peer; python)"
_SCOPE = "https://batch.core.windows.net//.default"

Send = Callable[[int, int], Awaitable[None]]  # (sender slot, message number)


# --- the clients (run in the worker process) -------------------------------------------------------


def _headers(token: str) -> dict[str, str]:
    """The headers BatchClient sends, fresh per request."""
    return {
        "client-request-id": str(uuid.uuid4()),
        "return-client-request-id": "true",
        "ocp-date": email.utils.formatdate(usegmt=True),
        "content-length": "0",
        "authorization": "Bearer " + token,
        "user-agent": _USER_AGENT,
    }


async def _whole_path(stack: AsyncExitStack, *, telemetry: bool = False, sample_all: bool = False) -> Send:
    from delete_job.decision import Outcome  # noqa: PLC0415 - only this case loads the app
    from delete_job.processor import Processor  # noqa: PLC0415
    from delete_job.records import Received  # noqa: PLC0415
    from shared.settings import load_settings  # noqa: PLC0415

    env = dict(os.environ)
    if telemetry:
        # The production set-up (spans, records, metrics batched to the Azure Monitor exporters, which
        # convert them and upload them from their own threads, counted here) with the managed identity's
        # token, over HTTPS, to the ingestion stand-in (emulators/ingestion.py), which accepts every
        # upload as Application Insights does: nothing is kept on disk for a retry (measure.telemetry_env).
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = env["BENCH_APPLICATIONINSIGHTS_CONNECTION_STRING"]
        if sample_all:
            env["OTEL_TRACES_SAMPLER"] = "always_on"
    processor = Processor.create(load_settings(env))
    stack.push_async_callback(processor.close)
    enqueued = datetime.now(UTC)

    async def send(_slot: int, n: int) -> None:
        received = Received(
            message_id=f"{n:032x}",
            body=b'{"jobId": "job-%d"}' % n,
            content_type="application/json",
            enqueued_time_utc=enqueued,
            delivery_count=1,
        )
        result = await processor.process(received)
        if result.outcome is not Outcome.DELETED:
            raise RuntimeError(f"message {n}: {result}")

    return send


async def _batch_client(stack: AsyncExitStack, url: str, token: str, *, package: bool = False) -> Send:
    from shared.batch_client import BatchClient  # noqa: PLC0415

    async def fixed_token() -> str:
        return token

    client = BatchClient(url, fixed_token)
    if package:
        # The same requests through the maintained package's transport, on a session set up as ours is.
        # BatchClient takes no transport (the app has one), so the bench swaps it in.
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415

        client._transport = AiohttpTransport(client=_package_session)
    stack.push_async_callback(client.aclose)

    async def send(_slot: int, n: int) -> None:
        response = await client.delete_job(f"job-{n}")
        if response.status != 202:
            raise RuntimeError(f"HTTP {response.status}")

    return send


def _package_session() -> Any:
    """An aiohttp session as shared.aiohttp_transport opens one, for httpx-aiohttp's transport."""
    import aiohttp  # noqa: PLC0415

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=60.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )


async def _aiohttp(stack: AsyncExitStack, url: str, token: str) -> Send:
    import aiohttp  # noqa: PLC0415

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
    stack.push_async_callback(session.close)
    params = {"api-version": API_VERSION}

    async def send(_slot: int, n: int) -> None:
        async with session.delete(f"{url}/jobs/job-{n}", params=params, headers=_headers(token)) as response:
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"HTTP {response.status}")

    return send


async def _floor(stack: AsyncExitStack, url: str, token: str) -> Send:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def close() -> None:
        for _, writer in connections.values():
            writer.close()
            await writer.wait_closed()

    stack.push_async_callback(close)

    async def send(slot: int, n: int) -> None:
        connection = connections.get(slot)
        if connection is None:
            connection = connections[slot] = await asyncio.open_connection(host, port)
        reader, writer = connection
        lines = "".join(f"{name}: {value}\r\n" for name, value in _headers(token).items())
        target = f"/jobs/job-{n}?api-version={API_VERSION}"
        writer.write(f"DELETE {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n{lines}\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
            if length:
                await reader.readexactly(length)
        if head[9:12] != b"202":
            raise RuntimeError(f"HTTP {head[9:12]!r}")

    return send


async def _httpx(stack: AsyncExitStack, url: str, token: str, *, ours: bool = False) -> Send:
    import httpx  # noqa: PLC0415

    from shared.aiohttp_transport import AiohttpTransport  # noqa: PLC0415

    client = httpx.AsyncClient(transport=AiohttpTransport()) if ours else httpx.AsyncClient()
    stack.push_async_callback(client.aclose)
    params = {"api-version": API_VERSION}

    async def send(_slot: int, n: int) -> None:
        response = await client.delete(f"{url}/jobs/job-{n}", params=params, headers=_headers(token))
        if response.status_code != 202:
            raise RuntimeError(f"HTTP {response.status_code}")

    return send


async def _azure_batch(stack: AsyncExitStack, url: str, token: str, *, poll: bool) -> Send:
    from azure.batch.aio import BatchClient as SdkClient  # noqa: PLC0415 - bench peer only
    from azure.core.credentials import AccessToken  # noqa: PLC0415
    from azure.core.pipeline import PipelineRequest  # noqa: PLC0415
    from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy  # noqa: PLC0415

    class FixedCredential:
        """The token the other peers send, as an AsyncTokenCredential."""

        def __init__(self) -> None:
            self._token = AccessToken(token, int(time.time()) + 3600)

        async def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
            return self._token

        async def close(self) -> None:
            return None

        async def __aenter__(self) -> FixedCredential:
            return self

        async def __aexit__(self, *_exc: object) -> None:
            return None

    class LoopbackBearerPolicy(AsyncBearerTokenCredentialPolicy):  # type: ignore[type-arg]
        """azure-core refuses a bearer token over http://; the emulator is plain HTTP on loopback. Setting
        the documented per-request ``enforce_https=False`` here covers the poller's GET too."""

        async def on_request(self, request: PipelineRequest[Any]) -> None:
            request.context.options["enforce_https"] = False
            await super().on_request(request)

    credential = FixedCredential()
    client = SdkClient(url, credential, authentication_policy=LoopbackBearerPolicy(credential, _SCOPE))
    stack.push_async_callback(client.close)

    async def request(_slot: int, n: int) -> None:
        await client._delete_job_internal(f"job-{n}")  # raises unless 202

    async def public(_slot: int, n: int) -> None:
        poller = await client.begin_delete_job(f"job-{n}")
        await poller.result()
        if poller.status() != "Succeeded":
            raise RuntimeError(f"begin_delete_job: {poller.status()}")

    return public if poll else request


async def _client(case: str, stack: AsyncExitStack, url: str, token: str) -> Send:
    if case in ("whole-path", "whole-path-telemetry", "whole-path-telemetry-all"):
        return await _whole_path(
            stack, telemetry=case != "whole-path", sample_all=case == "whole-path-telemetry-all"
        )
    if case in ("batch-client", "batch-client-httpx-aiohttp"):
        return await _batch_client(stack, url, token, package=case == "batch-client-httpx-aiohttp")
    if case == "aiohttp":
        return await _aiohttp(stack, url, token)
    if case == "floor":
        return await _floor(stack, url, token)
    if case in ("httpx", "httpx-ours"):
        return await _httpx(stack, url, token, ours=case == "httpx-ours")
    if case in ("azure-batch", "azure-batch-poller"):
        return await _azure_batch(stack, url, token, poll=case == "azure-batch-poller")
    raise SystemExit(f"unknown case {case!r}")


async def _drive(send: Send, concurrency: int, first: int, *, until: float = 0.0, total: int = 0) -> int:
    """``concurrency`` senders send messages numbered from ``first`` until the clock passes ``until`` or
    ``total`` messages are sent; how many were sent (all of them finished)."""
    numbers = itertools.count(first)
    sent = 0

    async def sender(slot: int) -> None:
        nonlocal sent
        while True:
            n = next(numbers)
            if (total and n >= first + total) or (until and time.perf_counter() >= until):
                return
            await send(slot, n)
            sent += 1

    await asyncio.gather(*(sender(slot) for slot in range(concurrency)))
    return sent


def _configure_logging(stream: Any) -> None:
    """As the app logs under the host: every record through a handler that formats it as a JSON line."""
    from emulators.host._logs import JsonLinesFormatter  # noqa: PLC0415

    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.WARNING)  # as the host does: the SDKs' INFO is not the app's


async def _steady(
    send: Send, concurrency: int, first: int, *, warmup: float, seconds: float, emulator_pid: int
) -> dict[str, Any]:
    """``concurrency`` senders send without pause; after ``warmup`` seconds, count the messages completed
    and the CPU used over ``seconds`` of steady state (no ramp-up, no draining in the window)."""
    numbers = itertools.count(first)
    done = 0
    stopping = False
    progressed = asyncio.Event()

    async def sender(slot: int) -> None:
        nonlocal done
        while not stopping:
            await send(slot, next(numbers))
            done += 1
            progressed.set()

    senders = [asyncio.create_task(sender(slot)) for slot in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        await progressed.wait()  # warmed up means some message went through (a loaded machine, a tiny run)
        done0, emulator0 = done, cpu_seconds(emulator_pid)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        progressed.clear()
        await asyncio.sleep(seconds)
        await progressed.wait()  # and the window holds one at least: a figure per message needs one
        done1, emulator1 = done, cpu_seconds(emulator_pid)
        cpu1, wall1 = time.process_time(), time.perf_counter()
    finally:
        stopping = True
        await asyncio.gather(*senders)
    return {
        "concurrency": concurrency,
        "messages": done1 - done0,
        "seconds": wall1 - wall0,
        "cpu": cpu1 - cpu0,
        "emulatorCpu": emulator1 - emulator0,
        "next": next(numbers),
    }


async def _windows(args: argparse.Namespace) -> list[dict[str, Any]]:
    token = os.environ.get("BENCH_TOKEN", "")
    figures = []
    async with AsyncExitStack() as stack:
        send = await _client(args.case, stack, args.url, token)
        first = 0
        for concurrency in args.concurrency:
            figure = await _steady(
                send,
                concurrency,
                first,
                warmup=args.warmup,
                seconds=args.seconds,
                emulator_pid=args.emulator_pid,
            )
            first = figure.pop("next")
            figures.append({"case": args.case, **figure})
    return figures


async def _soak(args: argparse.Namespace) -> dict[str, Any]:
    process = psutil.Process()
    async with AsyncExitStack() as stack:
        send = await _whole_path(stack)
        started = time.perf_counter()
        await _drive(send, args.concurrency, 0, total=args.warmup_messages)
        gc.collect()
        rss_warm = process.memory_info().rss
        peak = rss_warm
        cpu0, wall0 = time.process_time(), time.perf_counter()
        first, chunks = args.warmup_messages, 10
        for chunk in range(chunks):
            size = args.messages // chunks + (1 if chunk < args.messages % chunks else 0)
            first += await _drive(send, args.concurrency, first, total=size)
            peak = max(peak, process.memory_info().rss)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        gc.collect()
        rss_end = process.memory_info().rss
    return {
        "messages": first,
        "measured": first - args.warmup_messages,
        "seconds": wall,
        "totalSeconds": time.perf_counter() - started,
        "cpu": cpu,
        "rssWarm": rss_warm,
        "rssPeak": peak,
        "rssEnd": rss_end,
    }


async def _sampled(args: argparse.Namespace) -> dict[str, Any]:
    from bench.sampling import Sampler  # noqa: PLC0415

    async with AsyncExitStack() as stack:
        send = await _whole_path(stack)
        first = await _drive(send, args.concurrency, 0, until=time.perf_counter() + args.warmup) + 1
        with Sampler() as sampler:
            sent = await _drive(send, args.concurrency, first, until=time.perf_counter() + args.seconds)
    return {
        "messages": sent,
        "samples": sampler.samples,
        "project": dict(sampler.project),
        "packages": dict(sampler.packages),
    }


# --- the orchestrator's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class PathFigure:
    """Medians over the runs of one client at one concurrency."""

    case: str
    concurrency: int
    per_second: float
    cpu_us: float  # client CPU per message
    client_core: float  # client CPU / wall time (1.0 = one core busy)
    emulator_us: float  # Batch emulator CPU per message
    emulator_core: float
    runs: int

    @property
    def label(self) -> str:
        return CASES[self.case]


def _figure(case: str, concurrency: int, lines: list[dict[str, Any]]) -> PathFigure:
    return PathFigure(
        case=case,
        concurrency=concurrency,
        per_second=median([x["messages"] / x["seconds"] for x in lines]),
        cpu_us=median([x["cpu"] / x["messages"] * 1e6 for x in lines]),
        client_core=median([x["cpu"] / x["seconds"] for x in lines]),
        emulator_us=median([x["emulatorCpu"] / x["messages"] * 1e6 for x in lines]),
        emulator_core=median([x["emulatorCpu"] / x["seconds"] for x in lines]),
        runs=len(lines),
    )


def _worker(
    s: Services,
    env: dict[str, str],
    case: str,
    concurrency: tuple[int, ...],
    *,
    seconds: float,
    warmup: float,
) -> list[dict[str, Any]]:
    return run_child(
        [
            "-m",
            "bench.path",
            "worker",
            "--case",
            case,
            "--url",
            s.batch_url,
            "--emulator-pid",
            str(s.batch_pid),
            "--seconds",
            str(seconds),
            "--warmup",
            str(warmup),
            "--concurrency",
            *map(str, concurrency),
        ],
        env,
    )


def measure_peers(s: Services, size: Size, cases: tuple[str, ...] = tuple(CASES)) -> list[PathFigure]:
    """Section 1: every client at every concurrency, 0 ms latency; runs interleaved so drift hits all."""
    env = child_env({**app_env(s), **telemetry_env(s), "BENCH_TOKEN": s.token()})
    runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for _ in range(size.repeats):
        for case in cases:
            for line in _worker(s, env, case, size.concurrency, seconds=size.seconds, warmup=size.warmup):
                runs[case, line["concurrency"]].append(line)
    return [_figure(case, c, lines) for (case, c), lines in sorted(runs.items(), key=lambda kv: kv[0][1])]


@dataclass(frozen=True)
class LatencyFigure:
    case: str
    concurrency: int
    latency_ms: int
    per_second: float
    cpu_us: float
    client_core: float
    emulator_core: float

    @property
    def ideal(self) -> float:
        return self.concurrency / (self.latency_ms / 1000)

    @property
    def share(self) -> float:
        return self.per_second / self.ideal


LATENCY_CASES = ("whole-path", "aiohttp")  # the whole path, and raw aiohttp for reference


def measure_latency(s: Services, size: Size, latency_ms: int = 50) -> list[LatencyFigure]:
    """Section 2: the whole path (and raw aiohttp, the reference) with the Batch emulator answering
    after ``latency_ms``."""
    env = child_env({**app_env(s), "BENCH_TOKEN": s.token()})
    runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    warmup = max(size.warmup, 4 * latency_ms / 1000)
    s.batch.configure(latencyMs=latency_ms)
    try:
        for _ in range(size.repeats):
            for case in LATENCY_CASES:
                for line in _worker(
                    s, env, case, size.latency_concurrency, seconds=size.latency_seconds, warmup=warmup
                ):
                    runs[case, line["concurrency"]].append(line)
    finally:
        s.batch.configure(latencyMs=0)
    figures = []
    for (case, concurrency), lines in runs.items():
        f = _figure(case, concurrency, lines)
        figures.append(
            LatencyFigure(
                case, concurrency, latency_ms, f.per_second, f.cpu_us, f.client_core, f.emulator_core
            )
        )
    return figures


@dataclass(frozen=True)
class SoakFigure:
    warmup: int
    measured: int
    seconds: float  # the measured messages
    total_seconds: float  # from the first message (the first token request) to the last
    cpu_us: float
    token_requests: int
    token_lifetime: int
    rss_warm: int
    rss_peak: int
    rss_end: int

    @property
    def messages(self) -> int:
        return self.warmup + self.measured

    @property
    def tokens_per_10k(self) -> float:
        return self.token_requests / self.messages * 10_000

    @property
    def lifetimes(self) -> int:
        """Token lifetimes the run spanned: at most this many token requests are expected."""
        return max(1, math.ceil(self.total_seconds / self.token_lifetime))

    @property
    def growth_mb(self) -> float:
        return (self.rss_end - self.rss_warm) / 1e6


def soak(s: Services, size: Size, concurrency: int = 16) -> SoakFigure:
    """Section 3: one processor, warm-up then many messages; token requests seen by the identity
    endpoint and the process's RSS (after a garbage collection) before and after."""
    s.identity.reset()
    lifetime = int(s.identity.config()["lifetimeSeconds"])
    [line] = run_child(
        [
            "-m",
            "bench.path",
            "soak",
            "--concurrency",
            str(concurrency),
            "--warmup-messages",
            str(size.soak_warmup),
            "--messages",
            str(size.soak_messages),
        ],
        child_env(app_env(s)),
    )
    return SoakFigure(
        warmup=size.soak_warmup,
        measured=line["measured"],
        seconds=line["seconds"],
        total_seconds=line["totalSeconds"],
        cpu_us=line["cpu"] / line["measured"] * 1e6,
        token_requests=int(s.identity.stats()["tokenRequests"]),
        token_lifetime=lifetime,
        rss_warm=line["rssWarm"],
        rss_peak=line["rssPeak"],
        rss_end=line["rssEnd"],
    )


@dataclass(frozen=True)
class Breakdown:
    """Stack samples of the whole path at 16 concurrent: shares of the samples that were not idle."""

    messages: int
    samples: int
    project: list[tuple[str, float]]  # innermost project function (with all it called), share
    packages: list[tuple[str, float]]  # package of the innermost frame, share


def _shares(counts: dict[str, int], total: int, top: int) -> list[tuple[str, float]]:
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    shares = [(name, n / total) for name, n in ranked[:top]]
    rest = sum(n for _, n in ranked[top:])
    if rest:
        shares.append((f"({len(ranked) - top} others)", rest / total))
    return shares


def where_cpu_goes(s: Services, size: Size, concurrency: int = 16) -> Breakdown:
    """Where the whole path's CPU goes, from stack samples in a child of its own."""
    [line] = run_child(
        [
            "-m",
            "bench.path",
            "sample",
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(2 * size.seconds),
            "--warmup",
            str(size.warmup),
        ],
        child_env(app_env(s)),
    )
    total = max(1, line["samples"])
    return Breakdown(
        messages=line["messages"],
        samples=line["samples"],
        project=_shares(line["project"], total, 10),
        packages=_shares(line["packages"], total, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="One client's measurements (run by `python -m bench`).")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="messages/s and CPU in timed windows")
    worker.add_argument("--case", choices=CASES, required=True)
    worker.add_argument("--url", required=True, help="the Batch emulator (the whole path reads settings)")
    worker.add_argument("--emulator-pid", type=int, required=True)
    worker.add_argument("--concurrency", type=int, nargs="+", default=[16])
    worker.add_argument("--seconds", type=float, default=2.0)
    worker.add_argument("--warmup", type=float, default=0.5)
    soak_parser = commands.add_parser("soak", help="RSS over many messages through the whole path")
    soak_parser.add_argument("--concurrency", type=int, default=16)
    soak_parser.add_argument("--warmup-messages", type=int, default=5_000)
    soak_parser.add_argument("--messages", type=int, default=100_000)
    sample_parser = commands.add_parser("sample", help="where the whole path's CPU goes (stack samples)")
    sample_parser.add_argument("--concurrency", type=int, default=16)
    sample_parser.add_argument("--seconds", type=float, default=3.0)
    sample_parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        if args.command != "worker" or args.case == "whole-path":
            _configure_logging(sink)
        if args.command == "soak":
            print(json.dumps(asyncio.run(_soak(args))))
        elif args.command == "sample":
            print(json.dumps(asyncio.run(_sampled(args))))
        else:
            for line in asyncio.run(_windows(args)):
                print(json.dumps(line))


if __name__ == "__main__":
    main()
