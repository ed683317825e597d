"""``python -m emulators.servicebus --port N [--queue NAME[:key=value,...]]... [--config FILE.json]``.

SIGUSR1 drops every client connection (queue state stays); ``EMULATOR_CANARY`` makes it watch every
received byte for that string (see ``_server``)."""

from __future__ import annotations

import argparse

from emulators import _cli
from emulators.servicebus._config import (
    ConfigError,
    QueueSettings,
    load_config_file,
    parse_queue_spec,
    validate,
)
from emulators.servicebus._server import serve


def _queue(text: str) -> QueueSettings:
    try:
        return parse_queue_spec(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> None:
    parser = _cli.parser(
        "python -m emulators.servicebus",
        "A local Azure Service Bus (queues) for the azure-servicebus SDK, over AMQP 1.0.",
    )
    parser.add_argument(
        "--queue",
        action="append",
        type=_queue,
        default=[],
        metavar="NAME[:key=value,...]",
        help="declare a queue, e.g. orders:lockDuration=1.5,maxDeliveryCount=3 (repeatable); keys: "
        "lockDuration, maxDeliveryCount, forwardDeadLetteredMessagesTo, duplicateDetectionWindow, "
        "defaultMessageTimeToLive (durations in seconds); test faults: rejectSendRate (0..1: refuse "
        "that share of sends), rejectSendSeed, stallSendRate (0..1: leave that share of sends unanswered)",
    )
    parser.add_argument(
        "--config", metavar="FILE.json", help='declare queues from {"queues": [{"name": ..., ...}]}'
    )
    args = parser.parse_args(argv)
    _cli.setup_logging(args.verbose)
    try:
        queues = validate([*(load_config_file(args.config) if args.config else []), *args.queue])
    except ConfigError as error:
        parser.error(str(error))
    serve(queues, host=args.host, port=args.port, banner="Service Bus emulator listening on {url}")


if __name__ == "__main__":
    main()
