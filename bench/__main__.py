"""``python -m bench [--size tiny|full] [--out FILE]``: the whole benchmark, written to bench/RESULTS.md
(a tiny run to bench/out/, which git ignores), ending with the targets, held or missed.

1-3: the function's whole path per message next to its peers, under latency, and over many messages
(bench/path.py); 4: cold start (bench/cold_start.py); 5: through Service Bus and the local host
(bench/host_throughput.py); 6: the emulators' CPU beside the clients' (from the runs above). All of it in
this one process tree; ``make bench`` runs the full size (about 5 minutes on 2 cores), the tests a tiny
one (seconds, figures meaningless).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import host_throughput
from bench.cold_start import measure_cold_start
from bench.measure import ROOT, SIZES, StealMeter, machine, services
from bench.path import measure_latency, measure_peers, soak, where_cpu_goes
from bench.report import SECTIONS, Results, render, targets_summary


def _step(number: int, started: float) -> None:
    print(f"[{time.perf_counter() - started:5.0f} s] {SECTIONS[number - 1]}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--size", choices=SIZES, default="full", help="full (make bench) or tiny (tests)")
    parser.add_argument(
        "--out",
        type=Path,
        help="the Markdown to write (default: bench/RESULTS.md for the full size, the committed figures;"
        " bench/out/RESULTS-<size>.md, not committed, for any other)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "bench" / ("RESULTS.md" if args.size == "full" else f"out/RESULTS-{args.size}.md")
        args.out.parent.mkdir(exist_ok=True)
    size = SIZES[args.size]
    steal = StealMeter()
    started = time.perf_counter()
    with services() as s:
        _step(1, started)
        peers = measure_peers(s, size)
        breakdown = where_cpu_goes(s, size)
        _step(2, started)
        latency = measure_latency(s, size)
        _step(3, started)
        soaked = soak(s, size)
        _step(4, started)
        cold = measure_cold_start(s, size)
    _step(5, started)
    hosts = []
    for concurrency in size.host_concurrency:
        with tempfile.TemporaryDirectory() as tmp:
            host = host_throughput.run(size.host_messages, concurrency, 0, Path(tmp))
        if host["completed"] < host["messages"]:
            sys.exit(f"the host settled only {host['completed']} of {host['messages']} messages: {host}")
        hosts.append({**host, "concurrency": concurrency})
    results = Results(
        size_name=args.size,
        size=size,
        machine=machine(),
        steal_percent=steal.percent(),
        seconds=time.perf_counter() - started,
        peers=peers,
        breakdown=breakdown,
        latency=latency,
        soak=soaked,
        cold=cold,
        host=hosts,
    )
    args.out.write_text(render(results), encoding="utf-8")
    print(f"[{results.seconds:5.0f} s] wrote {args.out}")
    print(targets_summary(results))


if __name__ == "__main__":
    main()
