"""`dead-letters list|show`: the failure records and forwarded dead letters on DEAD_LETTER_QUEUE
(`replay` and `discard` are in `_replay_app`, on the same command group)."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from azure.servicebus import ServiceBusClient
from azure.servicebus import ServiceBusReceiver as Receiver
from rich.text import Text

from deleter_cli._common import (
    ConnectionStringOption,
    DeadLetterQueueOption,
    NamespaceOption,
    dead_letter_queue,
    err,
    expected_failures,
    out,
    resolve_connection,
)
from deleter_cli._config import Connection, Queue, Sources, open_client
from deleter_cli._deadletter import DeadLetter
from deleter_cli._dlq import browse
from deleter_cli._errors import EXIT_PARTIAL, CliError, service_errors
from deleter_cli._filters import Filters, parse_since
from deleter_cli._render import detail, print_wide, raw_json, summary_json, table, wide_table

__all__ = [
    "CodeOption",
    "JobOption",
    "LimitOption",
    "ReasonOption",
    "SinceOption",
    "dead_letters",
    "matching",
    "open_dead_letter_queue",
    "selection",
]

dead_letters = typer.Typer(
    help="Read and replay the failure records and the broker's forwarded dead letters.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ReasonOption = Annotated[
    list[str] | None,
    typer.Option("--reason", help="e.g. PreconditionFailed, MaxDeliveryCountExceeded (repeatable)"),
]
CodeOption = Annotated[
    list[str] | None,
    typer.Option("--code", help="a Batch error code (ConditionNotMet) or an HTTP status (412) (repeatable)"),
]
JobOption = Annotated[list[str] | None, typer.Option("--job", help="a job id (repeatable)")]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="failed at or after: 2026-11-28T10:00:00Z (UTC if no offset), or 30m, 2h, 7d"
    ),
]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="at most this many records")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON lines, for scripts")]


def selection(
    reason: list[str] | None,
    code: list[str] | None,
    job: list[str] | None,
    since: str | None,
    ids: list[str] | None = None,
) -> Filters:
    try:
        moment = parse_since(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    return Filters.create(reasons=reason, codes=code, jobs=job, ids=ids, since=moment)


@contextmanager
def open_dead_letter_queue(
    connection: Connection, queue: Queue
) -> Iterator[tuple[ServiceBusClient, Receiver]]:
    """A client and a receiver on the dead-letter queue; Service Bus failures inside name the queue."""
    with (
        open_client(connection) as client,
        service_errors(connection, queue),
        client.get_queue_receiver(queue.name, prefetch_count=0) as receiver,
    ):
        yield client, receiver


def matching(receiver: Receiver, filters: Filters, limit: int | None) -> Iterator[DeadLetter]:
    for count, dead_letter in enumerate(filter(filters.matches, browse(receiver)), start=1):
        yield dead_letter
        if limit is not None and count >= limit:
            return


def _json_line(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


@dead_letters.command("list")
def list_(
    *,
    reason: ReasonOption = None,
    code: CodeOption = None,
    job: JobOption = None,
    since: SinceOption = None,
    limit: LimitOption = None,
    json_: JsonOption = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="one line per record, every column (for a wide terminal)")
    ] = False,
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """List the dead letters without removing anything (peek): reason, job, HTTP status, Batch error
    code, when it failed, what to do, message id."""
    with expected_failures():
        filters = selection(reason, code, job, since)
        sources = Sources.load()
        queue = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        shown: list[DeadLetter] = []
        with open_dead_letter_queue(connection, queue) as (_, receiver):
            for dead_letter in matching(receiver, filters, limit):
                if json_:
                    _json_line(summary_json(dead_letter))
                else:
                    shown.append(dead_letter)
        if not json_:
            title = f"{len(shown)} dead letter{'s' * (len(shown) != 1)} on queue {queue.name}"
            if limit is not None and len(shown) >= limit:
                title += f" (the first {limit} that match)"
            console = out()
            if shown and wide:
                print_wide(console, wide_table(shown, title))
            elif shown:
                console.print(table(shown, title, width=console.width), soft_wrap=False)
            else:
                console.print(Text(f"no dead letters match on queue {queue.name}"))


@dead_letters.command("show")
def show(
    *,
    message: Annotated[str, typer.Argument(help="the record's message id, or its sequence number")],
    json_: Annotated[bool, typer.Option("--json", help="the message as it is, as JSON")] = False,
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Show one record in full: reason, description, Batch's error, request ids, attempts, and the
    original message. Several records with the same message id are all shown."""
    with expected_failures():
        sources = Sources.load()
        queue = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        with open_dead_letter_queue(connection, queue) as (_, receiver):
            found = list(matching(receiver, Filters.create(ids=[message]), None))
        if not found:
            err().print(Text(f"no message {message!r} on queue {queue.name}", style="red"))
            raise typer.Exit(EXIT_PARTIAL)
        for dead_letter in found:
            if json_:
                _json_line(raw_json(dead_letter.envelope))
            else:
                out().print(detail(dead_letter), soft_wrap=False)
