"""RESULTS.md: one Markdown table per section, the machine they were measured on, and the targets.

Every table has a label in its first column and numbers (thousands separated by commas) in the others,
so that a reader, or a test, can take the figures back out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.cold_start import TELEMETRY_LIBRARIES, ColdFigure
from bench.measure import Size
from bench.path import Breakdown, LatencyFigure, PathFigure, SoakFigure

__all__ = ["SECTIONS", "Results", "render"]

SECTIONS = (
    "1. Per-message cost at 0 ms Batch latency",
    "2. Throughput under 50 ms Batch latency",
    "3. Token requests and memory over many messages",
    "4. Cold start",
    "5. Through Service Bus",
    "6. Emulator headroom",
)
RATIO_TARGET = 2.0
CLIENT_RATIO_TARGET = 1.3  # BatchClient alone
IDEAL_SHARE_TARGET = 0.9
RSS_TARGET_MB = 10.0
COLD_TARGET = 1.2
TELEMETRY_COLD_TARGET = 1.2  # telemetry on vs the unavoidable imports plus the exporter's
TELEMETRY_CPU_TARGET = 1.3  # the whole path's CPU per message, telemetry on vs off, same run
BUSY_EMULATOR = 0.8  # cores
HOST_SHARE_TARGET = 0.2  # the local host's messages/s vs the function alone and the emulator alone
HOST_CPU_TARGET = 2.0  # the host's CPU per message vs the function's own whole path
BUSY_HOST = 0.8  # cores: a host slower than its peers must be busy, not waiting
HOST_CONCURRENCY = 64


@dataclass(frozen=True)
class Results:
    size_name: str
    size: Size
    machine: dict[str, str]
    steal_percent: float
    seconds: float
    peers: list[PathFigure]
    breakdown: Breakdown
    latency: list[LatencyFigure]
    soak: SoakFigure
    cold: ColdFigure
    host: list[dict[str, Any]]  # host_throughput.run's figures, with "concurrency" added

    def peer(self, case: str, concurrency: int) -> PathFigure:
        [figure] = [f for f in self.peers if f.case == case and f.concurrency == concurrency]
        return figure

    def ratio(self, concurrency: int, case: str = "whole-path") -> float:
        return self.peer(case, concurrency).cpu_us / self.peer("aiohttp", concurrency).cpu_us

    def latency_at(self, concurrency: int, case: str = "whole-path") -> LatencyFigure:
        [figure] = [f for f in self.latency if f.concurrency == concurrency and f.case == case]
        return figure


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _yes(holds: bool) -> str:
    return "yes" if holds else "**no**"


def _targets(r: Results) -> list[str]:
    rows = []
    for c in r.size.concurrency:
        ratio = r.ratio(c)
        rows.append(
            [
                f"whole-path CPU / raw aiohttp CPU, {c} concurrent, <= {RATIO_TARGET}",
                f"{ratio:.2f}",
                _yes(ratio <= RATIO_TARGET),
            ]
        )
    for c in r.size.concurrency:
        if any(f.case == "whole-path-telemetry" for f in r.peers):
            ratio = r.peer("whole-path-telemetry", c).cpu_us / r.peer("whole-path", c).cpu_us
            rows.append(
                [
                    f"whole path CPU, telemetry on / off, {c} concurrent, <= {TELEMETRY_CPU_TARGET}",
                    f"{ratio:.2f}",
                    _yes(ratio <= TELEMETRY_CPU_TARGET),
                ]
            )
    for c in r.size.concurrency:
        ratio = r.ratio(c, "batch-client")
        rows.append(
            [
                f"BatchClient alone CPU / raw aiohttp CPU, {c} concurrent, <= {CLIENT_RATIO_TARGET}",
                f"{ratio:.2f}",
                _yes(ratio <= CLIENT_RATIO_TARGET),
            ]
        )
    at64, at256 = r.latency_at(64), r.latency_at(256)
    raw64 = r.latency_at(64, "aiohttp")
    rows.append(
        [
            f"50 ms latency, 64 concurrent: >= {IDEAL_SHARE_TARGET:.0%} of ideal when raw aiohttp gets there",
            f"{at64.share:.0%} (raw aiohttp: {raw64.share:.0%})",
            # A machine on which raw aiohttp itself falls short says nothing about the function.
            _yes(at64.share >= IDEAL_SHARE_TARGET or raw64.share < IDEAL_SHARE_TARGET),
        ]
    )
    rows.append(
        [
            "50 ms latency, 256 concurrent: not below 64 concurrent",
            f"{_n(at256.per_second)}/s vs {_n(at64.per_second)}/s",
            _yes(at256.per_second >= at64.per_second),
        ]
    )
    soak = r.soak
    rows.append(
        [
            "token requests: 1 per token lifetime",
            f"{soak.token_requests} in {_n(soak.messages)} messages over {soak.total_seconds:.0f} s"
            f" (lifetime {_n(soak.token_lifetime)} s)",
            _yes(soak.token_requests <= soak.lifetimes),
        ]
    )
    rows.append(
        [
            f"RSS growth over {_n(soak.measured)} messages after warm-up < {RSS_TARGET_MB:.0f} MB",
            f"{soak.growth_mb:.1f} MB",
            _yes(soak.growth_mb < RSS_TARGET_MB),
        ]
    )
    cold = r.cold
    rows.append(
        [
            f"cold start / libraries-only imports <= {COLD_TARGET} (wall clock, in process)",
            f"{cold.ratio:.2f} (CPU time: {cold.cpu_ratio:.2f})",
            _yes(cold.ratio <= COLD_TARGET),
        ]
    )
    if cold.telemetry_libraries_ms:
        rows.append(
            [
                f"cold start, telemetry on / those imports and the exporter's <= {TELEMETRY_COLD_TARGET}",
                f"{cold.telemetry_ratio:.2f} (CPU time: {cold.telemetry_cpu_ratio:.2f})",
                _yes(cold.telemetry_ratio <= TELEMETRY_COLD_TARGET),
            ]
        )
    rows.append(
        [
            "azure.servicebus not imported on the happy path",
            ", ".join(cold.servicebus_modules) or "not imported",
            _yes(not cold.servicebus_modules),
        ]
    )
    rows += _host_targets(r)
    return ["## Targets", "", *_table(["target", "measured", "holds"], rows)]


def _host_targets(r: Results) -> list[list[str]]:
    """Issue 13's: the local host against the function alone and the emulator alone, in the same run."""
    hosts = [h for h in r.host if h["concurrency"] == HOST_CONCURRENCY]
    if not hosts or HOST_CONCURRENCY not in r.size.concurrency:
        return []
    h, whole = hosts[0], r.peer("whole-path", HOST_CONCURRENCY)
    n, rate, pace = h["messages"], h["perSecond"], h["emulatorPerSecond"]
    cpu_us, cores = h["hostCpu"] / n * 1e6, h["hostCpu"] / h["totalSeconds"]
    share = f"{HOST_SHARE_TARGET:.0%}"
    return [
        [
            f"local host, {HOST_CONCURRENCY} concurrent calls: >= {share} of the whole path's messages/s",
            f"{_n(rate)}/s vs {_n(whole.per_second)}/s ({rate / whole.per_second:.0%})",
            _yes(rate >= HOST_SHARE_TARGET * whole.per_second),
        ],
        [
            f"local host: >= {share} of the Service Bus emulator's own receive + complete",
            f"{_n(rate)}/s vs {_n(pace)}/s ({rate / pace:.0%})",
            _yes(rate >= HOST_SHARE_TARGET * pace),
        ],
        [
            f"local host CPU per message <= {HOST_CPU_TARGET} x the whole path's",
            f"{_n(cpu_us)} µs vs {_n(whole.cpu_us)} µs ({cpu_us / whole.cpu_us:.2f} x)",
            _yes(cpu_us <= HOST_CPU_TARGET * whole.cpu_us),
        ],
        [
            f"local host slower than both: busy (>= {BUSY_HOST} core), not waiting",
            f"{cores:.2f} core",
            _yes(rate >= min(whole.per_second, pace) or cores >= BUSY_HOST),
        ],
    ]


def _section1(r: Results) -> list[str]:
    lines = [
        f"## {SECTIONS[0]}",
        "",
        "Each client runs in a child process of its own on the default asyncio loop (as the Functions"
        " worker does) against the Batch emulator with `autoCreate` (every DELETE is a 202). CPU is that"
        " process's CPU time per message; messages/s is what it completed in the window. The whole path is"
        " `Processor.process` on a `Received` with a valid JSON body: parse, token (azure-identity's"
        " `ManagedIdentityCredential` against the identity endpoint, behind the app's cache), DELETE"
        " through `BatchClient`, decide, and one structured log record per message formatted as a JSON"
        " line (the local host's `JsonLinesFormatter`, custom dimensions included) by a"
        " `logging.StreamHandler` writing to `os.devnull`. The peers send the same DELETE with the same"
        " headers and a token fetched once (the azure-batch SDK with its own headers; its public"
        " `begin_delete_job` also polls GET once, so two requests per message).",
        "",
    ]
    rows = []
    for f in r.peers:
        base = r.peer("aiohttp", f.concurrency).cpu_us
        rows.append(
            [
                f.label,
                str(f.concurrency),
                _n(f.per_second),
                _n(f.cpu_us),
                f"{f.cpu_us / base:.2f}",
                _n(f.emulator_us),
            ]
        )
    header = [
        "client",
        "concurrent",
        "messages/s",
        "CPU µs/message",
        "CPU vs raw aiohttp (x)",
        "Batch emulator CPU µs/message",
    ]
    lines += _table(header, rows)
    b = r.breakdown
    lines += [
        "### Where the whole path's CPU goes",
        "",
        f"A SIGPROF sampler in the whole-path process ({_n(b.samples)} samples of CPU time over"
        f" {_n(b.messages)} messages at 16 concurrent; see `bench/sampling.py`). By the innermost project"
        " function on the stack, with everything it called (no project frame: the event loop's own"
        " callbacks, such as aiohttp parsing a response as it arrives):",
        "",
        *_table(
            ["function", "share of CPU samples (%)"], [[f"`{n}`", f"{v * 100:.1f}"] for n, v in b.project]
        ),
        "By the package whose code was running (a C function counts for its Python caller; `emulators` is"
        " the host's JSON formatter, `<string>` the methods dataclasses generate):",
        "",
        *_table(["package", "share of CPU samples (%)"], [[n, f"{v * 100:.1f}"] for n, v in b.packages]),
    ]
    return lines


def _section2(r: Results) -> list[str]:
    rows = []
    for c in r.size.latency_concurrency:
        whole, raw = r.latency_at(c), r.latency_at(c, "aiohttp")
        rows.append(
            [
                str(c),
                _n(whole.ideal),
                _n(whole.per_second),
                f"{whole.share * 100:.0f}",
                _n(raw.per_second),
                f"{raw.share * 100:.0f}",
                _n(whole.cpu_us),
                f"{whole.client_core:.2f}",
                f"{whole.emulator_core:.2f}",
            ]
        )
    header = [
        "concurrent invocations",
        "ideal messages/s",
        "whole path messages/s",
        "whole path % of ideal",
        "raw aiohttp messages/s",
        "raw aiohttp % of ideal",
        "whole path CPU µs/message",
        "whole path CPU (cores)",
        "Batch emulator CPU (cores)",
    ]
    return [
        f"## {SECTIONS[1]}",
        "",
        "The whole path as above, with the Batch emulator answering every request after 50 ms; raw aiohttp"
        " beside it shows what this machine allows any client. Ideal is concurrency / 0.05 s. Steady state:"
        " the window opens after a warm-up at the same concurrency and closes before the senders stop. CPU"
        " in cores is CPU time over wall time (1.00 = one core busy).",
        "",
        *_table(header, rows),
    ]


def _section3(r: Results) -> list[str]:
    s = r.soak
    rows = [
        ["messages through one processor (warm-up included)", _n(s.messages)],
        ["warm-up messages, before the first RSS reading", _n(s.warmup)],
        ["seconds, first message to last", f"{s.total_seconds:.1f}"],
        ["client CPU µs/message after warm-up", _n(s.cpu_us)],
        ["token lifetime (s)", _n(s.token_lifetime)],
        ["token requests the identity endpoint saw", str(s.token_requests)],
        ["token requests per 10,000 messages", f"{s.tokens_per_10k:.2f}"],
        ["RSS after warm-up (MB)", f"{s.rss_warm / 1e6:.1f}"],
        ["RSS peak while measuring (MB)", f"{s.rss_peak / 1e6:.1f}"],
        ["RSS at the end (MB)", f"{s.rss_end / 1e6:.1f}"],
        [f"RSS growth over {_n(s.measured)} messages (MB)", f"{s.growth_mb:.1f}"],
    ]
    return [
        f"## {SECTIONS[2]}",
        "",
        "One whole-path process, 16 concurrent, the identity endpoint's statistics reset before it"
        " starts; RSS read after a garbage collection.",
        "",
        *_table(["measure", "value"], rows),
    ]


def _section4(r: Results) -> list[str]:
    c = r.cold
    libraries = ", ".join(c.libraries)
    totals = [
        [
            "function: import function_app, index, first message",
            _n(c.function_ms),
            _n(c.function_cpu_ms),
            _n(c.function_process_ms),
        ],
        [
            f"libraries only: azure.functions, ManagedIdentityCredential, {libraries}",
            _n(c.libraries_ms),
            _n(c.libraries_cpu_ms),
            _n(c.libraries_process_ms),
        ],
        [
            "ratio function / libraries only",
            f"{c.ratio:.2f}",
            f"{c.cpu_ratio:.2f}",
            f"{c.function_process_ms / c.libraries_process_ms:.2f}",
        ],
    ]
    if c.telemetry_libraries_ms:
        totals += [
            [
                "function with telemetry on (APPLICATIONINSIGHTS_CONNECTION_STRING set)",
                _n(c.telemetry_ms),
                _n(c.telemetry_cpu_ms),
                _n(c.telemetry_process_ms),
            ],
            [
                "libraries only plus the exporter's: " + ", ".join(TELEMETRY_LIBRARIES),
                _n(c.telemetry_libraries_ms),
                _n(c.telemetry_libraries_cpu_ms),
                _n(c.telemetry_libraries_process_ms),
            ],
            [
                "ratio telemetry on / libraries plus the exporter's",
                f"{c.telemetry_ratio:.2f}",
                f"{c.telemetry_cpu_ratio:.2f}",
                f"{c.telemetry_process_ms / c.telemetry_libraries_process_ms:.2f}",
            ],
        ]
    steps = [
        ["import function_app (settings read)", _n(c.import_ms[0]), _n(c.import_ms[1])],
        ["index: `app.get_functions()`, user functions", f"{c.index_ms[0]:.1f}", f"{c.index_ms[1]:.1f}"],
        [
            "first message (azure-identity's import, token, connections, DELETE)",
            _n(c.first_message_ms[0]),
            _n(c.first_message_ms[1]),
        ],
    ]
    notes = [
        "azure.servicebus modules loaded by the cold function process:"
        f" {', '.join(c.servicebus_modules) or 'none'}.",
        f"HTTP client libraries loaded: function process {', '.join(c.http_imported) or 'none'};"
        f" libraries-only process {', '.join(c.libraries_http) or 'none'}.",
    ]
    if c.libraries_stale:
        notes.append(
            "**The libraries-only list is stale**: the two processes loaded different HTTP libraries; edit"
            " `HTTP_CLIENT_LIBRARIES` in `bench/cold_start.py`."
        )
    header = [
        "cold subprocess",
        "median ms, in process",
        "median CPU ms, in process",
        "median ms, whole process",
    ]
    return [
        f"## {SECTIONS[3]}",
        "",
        f"Medians of {c.runs} fresh interpreters of each kind, interleaved, after one untimed run of each"
        " (the bytecode cache exists, as in a deployed app). In process: from the child's first statement,"
        " wall clock and CPU time; whole process: spawn to exit as the parent saw it (interpreter start-up"
        " and shutdown included). The function is called as the host calls it: the blueprint's user"
        " function with an `azure.functions.ServiceBusMessage` filled as `emulators.host` fills one.",
        "",
        *_table(header, totals),
        "The function process's steps:",
        "",
        *_table(["step", "median ms", "median CPU ms"], steps),
        *[f"- {note}" for note in notes],
        "",
    ]


def _section5(r: Results) -> list[str]:
    rows = []
    for h in r.host:
        n = h["messages"]
        rows.append(
            [
                str(h["concurrency"]),
                _n(n),
                f"{h['totalSeconds']:.1f}",
                _n(h["perSecond"]),
                _n(h["emulatorPerSecond"]),
                _n(h["completed"]),
                _n(h["abandoned"]),
                _n(h["hostCpu"] / n * 1e6),
                f"{h['hostCpu'] / h['totalSeconds']:.2f}",
                _n(h["serviceBusCpu"] / n * 1e6),
                _n(h["batchCpu"] / n * 1e6),
            ]
        )
    header = [
        "max concurrent calls",
        "messages",
        "seconds",
        "messages/s",
        "emulator alone: receive + complete/s",
        "completed",
        "abandoned",
        "host CPU µs/message",
        "host CPU (cores)",
        "Service Bus emulator CPU µs/message",
        "Batch emulator CPU µs/message",
    ]
    return [
        f"## {SECTIONS[4]}",
        "",
        "`bench/host_throughput.py`: the messages are sent in batches to the Service Bus emulator, then"
        " `python -m emulators.host` starts and runs the real function_app (azure-servicebus's aio receiver,"
        " peek-lock, complete) against the Batch emulator (0 ms) until all are settled; from the host's"
        " ready line to the last settlement (the queue is filled first, so that the figure is the host's"
        " and not the sender's). The host runs the function in-process: its CPU includes the Service Bus"
        " SDK's."
        " At more than one `maxConcurrentCalls`, to show what bounds it. Beside it, in the same emulator"
        " process before the host starts: the same number of messages received (batches of 100) and"
        " completed by the sync SDK alone.",
        "",
        *_table(header, rows),
    ]


def _section6(r: Results) -> list[str]:
    rows = []

    def row(
        label: str, client_us: float, client_core: float, emulator_us: float, emulator_core: float
    ) -> None:
        rows.append([label, _n(client_us), f"{client_core:.2f}", _n(emulator_us), f"{emulator_core:.2f}"])

    for c in r.size.concurrency:
        whole = r.peer("whole-path", c)
        row(
            f"0 ms, whole path, {c} concurrent: Batch emulator",
            whole.cpu_us,
            whole.client_core,
            whole.emulator_us,
            whole.emulator_core,
        )
    floor = max((f for f in r.peers if f.case == "floor"), key=lambda f: f.per_second)
    row(
        f"0 ms, the floor client at {floor.concurrency} (its fastest client): Batch emulator",
        floor.cpu_us,
        floor.client_core,
        floor.emulator_us,
        floor.emulator_core,
    )
    top = max((f for f in r.latency if f.case == "whole-path"), key=lambda f: f.concurrency)
    emulator_us = top.emulator_core / top.per_second * 1e6 if top.per_second else 0.0
    row(
        f"50 ms, whole path, {top.concurrency} concurrent: Batch emulator",
        top.cpu_us,
        top.client_core,
        emulator_us,
        top.emulator_core,
    )
    h = max(r.host, key=lambda h: h["perSecond"])
    n, seconds = h["messages"], h["totalSeconds"]
    for name, key in (("Service Bus emulator", "serviceBusCpu"), ("Batch emulator", "batchCpu")):
        row(
            f"through Service Bus, {h['concurrency']} concurrent calls, host as the client: {name}",
            h["hostCpu"] / n * 1e6,
            h["hostCpu"] / seconds,
            h[key] / n * 1e6,
            h[key] / seconds,
        )
    header = [
        "run",
        "client CPU µs/message",
        "client CPU (cores)",
        "emulator CPU µs/message",
        "emulator CPU (cores)",
    ]
    busy = [row[0] for row in rows if float(row[4]) >= BUSY_EMULATOR]
    verdict = (
        f"An emulator used {BUSY_EMULATOR:.1f} core or more only in: {'; '.join(busy)}. There the"
        " messages/s is the emulator's capacity, not the client's (the client's CPU per message still holds)."
        if busy
        else f"No emulator reached {BUSY_EMULATOR:.1f} core in any of these runs: none was the bottleneck."
    )
    return [
        f"## {SECTIONS[5]}",
        "",
        "The emulators' CPU time (psutil, by pid) over the same windows as the client's. An emulator"
        " is the bottleneck only if it is the one near 1.00 core while the client is not.",
        "",
        *_table(header, rows),
        verdict,
        "",
    ]


def targets_summary(r: Results) -> str:
    """The targets as the last thing a run prints: each with held / MISSED, then the count."""
    rows = [line for line in _targets(r) if line.startswith("| ") and not line.startswith("| target |")]
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    width = max(len(target) for target, _, _ in cells)
    lines = ["Targets:"]
    for target, measured, holds in cells:
        verdict = "held  " if holds == "yes" else "MISSED"
        lines.append(f"  {verdict}  {target:<{width}}  {measured}")
    missed = sum(holds != "yes" for _, _, holds in cells)
    lines.append(f"{len(cells) - missed} held, {missed} missed")
    return "\n".join(lines)


def render(r: Results) -> str:
    size = r.size
    machine = [
        *[[name, value] for name, value in r.machine.items()],
        ["hypervisor steal during the run", f"{r.steal_percent:.1f} % of all CPU time"],
        [
            "size",
            f"`--size {r.size_name}`: medians of {size.repeats} run(s), {size.seconds:g}-s windows after"
            f" {size.warmup:g} s of warm-up",
        ],
        ["benchmark duration", f"{r.seconds:.0f} s"],
    ]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`), which runs everything in one process tree: each"
        " client in a child process of its own, each emulator in its own. The machine is a shared"
        " virtual machine, so figures move by about ±20 % from run to run: compare ratios within one run.",
        "",
        "## Machine",
        "",
        *_table(["", ""], machine),
        *_targets(r),
        *_section1(r),
        *_section2(r),
        *_section3(r),
        *_section4(r),
        *_section5(r),
        *_section6(r),
    ]
    return "\n".join(lines).rstrip() + "\n"
