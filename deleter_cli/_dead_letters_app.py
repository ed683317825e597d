"""`dead-letters list|show|replay`: the failure records and forwarded dead letters on DEAD_LETTER_QUEUE."""

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
    QueueOption,
    dead_letter_queue,
    deletion_queue,
    err,
    expected_failures,
    out,
    progress_bar,
    resolve_connection,
)
from deleter_cli._config import Connection, Queue, Sources, open_client
from deleter_cli._deadletter import DeadLetter, NotReplayableError, replay_copy
from deleter_cli._dlq import Outcome, ReplayResult, browse, replay
from deleter_cli._errors import EXIT_PARTIAL, CliError, describe_service_error, service_errors
from deleter_cli._filters import Filters, parse_since
from deleter_cli._render import detail, raw_json, summary_json, table

__all__ = ["dead_letters"]

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


def _filters(
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
def _dead_letter_queue(connection: Connection, queue: Queue) -> Iterator[tuple[ServiceBusClient, Receiver]]:
    """A client and a receiver on the dead-letter queue; Service Bus failures inside name the queue."""
    with (
        open_client(connection) as client,
        service_errors(connection, queue),
        client.get_queue_receiver(queue.name, prefetch_count=0) as receiver,
    ):
        yield client, receiver


def _matching(receiver: Receiver, filters: Filters, limit: int | None) -> Iterator[DeadLetter]:
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
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """List the dead letters without removing anything (peek): reason, job, HTTP status, Batch error
    code, when it failed, what to do, message id."""
    with expected_failures():
        filters = _filters(reason, code, job, since)
        sources = Sources.load()
        queue = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        shown: list[DeadLetter] = []
        with _dead_letter_queue(connection, queue) as (_, receiver):
            for dead_letter in _matching(receiver, filters, limit):
                if json_:
                    _json_line(summary_json(dead_letter))
                else:
                    shown.append(dead_letter)
        if not json_:
            title = f"{len(shown)} dead letter{'s' * (len(shown) != 1)} on queue {queue.name}"
            if limit is not None and len(shown) >= limit:
                title += f" (the first {limit} that match)"
            console = out()
            if shown:
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
        with _dead_letter_queue(connection, queue) as (_, receiver):
            found = list(_matching(receiver, Filters.create(ids=[message]), None))
        if not found:
            err().print(Text(f"no message {message!r} on queue {queue.name}", style="red"))
            raise typer.Exit(EXIT_PARTIAL)
        for dead_letter in found:
            if json_:
                _json_line(raw_json(dead_letter.envelope))
            else:
                out().print(detail(dead_letter), soft_wrap=False)


def _dry_run(selected: list[DeadLetter], source: Queue) -> None:
    console = out()
    would = 0
    for dead_letter in selected:
        job = f", job {dead_letter.job_id}" if dead_letter.job_id else ""
        about = f"{dead_letter.envelope.ref} ({dead_letter.reason}{job})"
        try:
            replay_copy(dead_letter, new_id=lambda: "")
        except NotReplayableError as exc:
            console.print(Text("would skip   ", style="yellow") + Text(f"{about}: {exc}"))
        else:
            console.print(Text("would replay ", style="green") + Text(about))
            would += 1
    console.print(
        Text(
            f"dry run on queue {source.name}: would replay {would}, skip {len(selected) - would};"
            " nothing was sent or removed"
        )
    )


@dead_letters.command("replay")
def replay_(
    *,
    reason: ReasonOption = None,
    code: CodeOption = None,
    job: JobOption = None,
    since: SinceOption = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="a message id or sequence number (repeatable)")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="replay every record (when no filter is given)")
    ] = False,
    limit: LimitOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be replayed; change nothing")
    ] = False,
    queue: QueueOption = None,
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
    receive_wait: Annotated[
        float, typer.Option("--receive-wait", min=0.1, help="seconds to wait for a record to arrive")
    ] = 5.0,
) -> None:
    """Send the chosen records' original requests to the deletion queue again, then remove the records.

    Each copy gets a new message id and a `replayOf` property naming the record; the original's
    correlation id and properties are kept, except retryAttempt and originalMessageId (a replay starts
    afresh). A record is removed only after its copy was sent; if the send fails it is kept. Exit 1 if
    any record was kept or skipped.
    """
    with expected_failures():
        if not (reason or code or job or since or ids or all_):
            raise CliError("choose records with --reason, --code, --job, --since or --id, or pass --all")
        filters = _filters(reason, code, job, since, ids)
        sources = Sources.load()
        source = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        target = None if dry_run else deletion_queue(queue, sources)
        with _dead_letter_queue(connection, source) as (client, receiver):
            selected = list(_matching(receiver, filters, limit))
            if not selected:
                out().print(Text(f"no dead letters match on queue {source.name}; nothing to replay"))
                return
            if target is None:
                _dry_run(selected, source)
                return
            results = _replay(
                client, receiver, connection=connection, target=target, selected=selected, wait=receive_wait
            )
        _summarise(results, target)


_STYLES = {Outcome.REPLAYED: "green", Outcome.KEPT: "red", Outcome.SKIPPED: "yellow"}


def _replay(
    client: ServiceBusClient,
    receiver: Receiver,
    *,
    connection: Connection,
    target: Queue,
    selected: list[DeadLetter],
    wait: float,
) -> list[ReplayResult]:
    console = out()
    progress = progress_bar("replaying", console)
    task = progress.add_task("replay", total=len(selected))

    def on_result(result: ReplayResult) -> None:
        dead_letter = result.dead_letter
        job = f" (job {dead_letter.job_id})" if dead_letter.job_id else ""
        line = Text(f"{result.outcome:<9}", style=_STYLES[result.outcome])
        joint = " as " if result.outcome is Outcome.REPLAYED else ": "
        line.append(f"{dead_letter.envelope.ref}{job}{joint}{result.detail}")
        progress.console.print(line)
        progress.advance(task)

    with progress:
        return replay(
            client,
            receiver,
            deletion_queue=target.name,
            selected=selected,
            describe_send_error=lambda exc: describe_service_error(exc, connection, target),
            on_result=on_result,
            max_wait_time=wait,
        )


def _summarise(results: list[ReplayResult], target: Queue) -> None:
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    not_removed = sum(r.outcome is Outcome.REPLAYED and not r.removed for r in results)
    summary = (
        f"replayed {counts[Outcome.REPLAYED]} to queue {target.name}, kept {counts[Outcome.KEPT]},"
        f" skipped {counts[Outcome.SKIPPED]}"
    )
    if not_removed:
        summary += f" ({not_removed} replayed but still on the dead-letter queue)"
    out().print(Text(summary))
    if counts[Outcome.KEPT] or counts[Outcome.SKIPPED] or not_removed:
        raise typer.Exit(EXIT_PARTIAL)
