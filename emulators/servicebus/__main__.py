"""``python -m emulators.servicebus --port N [--queue NAME[:key=value,...]]... [--config FILE.json]
[--shared-access-key NAME=KEY]...``; ``SERVICEBUS_SHARED_ACCESS_KEY=NAME=KEY`` adds one key too.

SIGUSR1 drops every client connection (queue state stays); ``EMULATOR_CANARY`` makes it watch every
received byte for that string (see ``_server``)."""

from __future__ import annotations

import argparse
import os

from emulators import _cli
from emulators.servicebus._auth import WELL_KNOWN_KEY, WELL_KNOWN_KEY_NAME, Keys, parse_key_spec
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


_KEY_ENV = "SERVICEBUS_SHARED_ACCESS_KEY"  # one NAME=KEY, like --shared-access-key


def _key(text: str) -> tuple[str, str]:
    try:
        return parse_key_spec(text)
    except ValueError as error:
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
        help="declare a queue, e.g. orders:lockDuration=1.5,maxDeliveryCount=3 (repeatable); keys, "
        "durations in seconds, defaults as in Azure: lockDuration (60, at most 300), maxDeliveryCount "
        "(10), forwardDeadLetteredMessagesTo, duplicateDetectionWindow (0: off), "
        "defaultMessageTimeToLive (none; caps a message's own); test faults: rejectSendRate (0..1: "
        "refuse that share of sends), rejectSendSeed, stallSendRate (0..1: leave that share of sends "
        "unanswered)",
    )
    parser.add_argument(
        "--config", metavar="FILE.json", help='declare queues from {"queues": [{"name": ..., ...}]}'
    )
    parser.add_argument(
        "--shared-access-key",
        action="append",
        type=_key,
        default=[],
        metavar="NAME=KEY",
        help=f"also accept SAS tokens signed with this key (repeatable; all rights; or ${_KEY_ENV}, "
        "which keeps it off the command line). Tokens signed with the development emulator's "
        f"well-known {WELL_KNOWN_KEY_NAME}={WELL_KNOWN_KEY} are always accepted; any other key, and a "
        "client that puts no token on $cbs, is refused as in Azure",
    )
    args = parser.parse_args(argv)
    _cli.setup_logging(args.verbose)
    try:
        queues = validate([*(load_config_file(args.config) if args.config else []), *args.queue])
    except ConfigError as error:
        parser.error(str(error))
    keys = list(args.shared_access_key)
    if os.environ.get(_KEY_ENV):
        try:
            keys.append(parse_key_spec(os.environ[_KEY_ENV]))
        except ValueError as error:
            parser.error(f"{_KEY_ENV}: {error}")
    with _cli.startup_errors("emulators.servicebus", debug=args.debug, port=args.port):
        serve(
            queues,
            host=args.host,
            port=args.port,
            banner="Service Bus emulator listening on {url}",
            keys=Keys(keys),
        )


if __name__ == "__main__":
    main()
