"""``python -m emulators.batch --port N``: run the Batch emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse

from emulators import _cli, canary
from emulators._http import Handler, run
from emulators.batch._app import BatchEmulator
from emulators.batch._model import Config
from emulators.batch._requestlog import LOG_LIMIT


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = _cli.parser("python -m emulators.batch", "A local Azure Batch data plane (jobs).")
    parser.add_argument(
        "--delete-delay-ms",
        type=_non_negative,
        default=0,
        help="how long an accepted delete stays in 'deleting' before the job is gone (default 0)",
    )
    parser.add_argument(
        "--latency-ms", type=_non_negative, default=0, help="delay before every data-plane answer"
    )
    parser.add_argument(
        "--request-log-limit",
        type=_non_negative,
        default=LOG_LIMIT,
        help=f"requests kept in the log, about 1.3 KB each (default {LOG_LIMIT:,})",
    )
    args = parser.parse_args(argv)
    _cli.setup_logging(args.verbose)
    canary.watch_logging("Batch emulator")
    defaults = Config(deleteDelayMs=args.delete_delay_ms, latencyMs=args.latency_ms)

    def make_handler(base_url: str) -> Handler:
        return BatchEmulator(base_url, defaults, log_limit=args.request_log_limit).handle

    with _cli.startup_errors("emulators.batch", debug=args.debug, port=args.port):
        run(make_handler, host=args.host, port=args.port, banner="Batch emulator listening on {url}")


if __name__ == "__main__":
    main()
