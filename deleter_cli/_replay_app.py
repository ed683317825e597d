"""`dead-letters replay|discard`: send the chosen records' requests again (changed if asked), or remove
them. Both choose records as `list` does; naming an id that matches nothing exits 1, as `show` does."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from azure.servicebus import ServiceBusClient
from azure.servicebus import ServiceBusReceiver as Receiver
from rich.text import Text

from deleter_cli._changes import Changes
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
from deleter_cli._config import Connection, Queue, Sources
from deleter_cli._dead_letters_app import (
    CodeOption,
    JobOption,
    LimitOption,
    ReasonOption,
    SinceOption,
    dead_letters,
    matching,
    open_dead_letter_queue,
    selection,
)
from deleter_cli._deadletter import DeadLetter, NotReplayableError, ReplayCopy, replay_copy
from deleter_cli._dlq import Outcome, ReplayResult, discard, replay
from deleter_cli._errors import EXIT_PARTIAL, CliError, describe_service_error

__all__: list[str] = []  # the commands register themselves on `dead_letters`

IdOption = Annotated[
    list[str] | None, typer.Option("--id", help="a message id or sequence number (repeatable)")
]
AllOption = Annotated[bool, typer.Option("--all", help="every record (when no filter is given)")]
WaitOption = Annotated[
    float, typer.Option("--receive-wait", min=0.1, help="seconds to wait for a record to arrive")
]
_STYLES = {
    Outcome.REPLAYED: "green",
    Outcome.DISCARDED: "green",
    Outcome.KEPT: "red",
    Outcome.SKIPPED: "yellow",
}


def _chosen(
    receiver: Receiver,
    *,
    reason: list[str] | None,
    code: list[str] | None,
    job: list[str] | None,
    since: str | None,
    ids: list[str] | None,
    all_: bool,
    limit: int | None,
    verb: str,
    queue: Queue,
) -> tuple[list[DeadLetter], list[str]]:
    """The records chosen, and the --id values that matched none of them (each named on stderr).
    Nothing chosen: says so and exits (1 when an --id matched nothing)."""
    if not (reason or code or job or since or ids or all_):
        raise CliError(
            f"choose records with --reason, --code, --job, --since or --id, or pass --all to {verb}"
        )
    selected = list(matching(receiver, selection(reason, code, job, since, ids), limit))
    refs = {ref for d in selected for ref in (d.envelope.message_id, *_numbers(d))}
    missing = [i for i in ids or () if i.strip() not in refs]
    _unmatched(missing, queue)
    if not selected:
        out().print(Text(f"no dead letters match on queue {queue.name}; nothing to {verb}"))
        raise typer.Exit(EXIT_PARTIAL if missing else 0)
    return selected, missing


def _numbers(dead_letter: DeadLetter) -> tuple[str, str]:
    number = dead_letter.envelope.sequence_number
    return str(number), f"#{number}"


def _about(dead_letter: DeadLetter) -> str:
    job = f", job {dead_letter.job_id}" if dead_letter.job_id else ""
    return f"{dead_letter.envelope.ref} ({dead_letter.reason}{job})"


def _unmatched(missing: list[str], queue: Queue) -> None:
    for ref in missing:
        err().print(Text(f"no message {ref!r} on queue {queue.name}", style="red"))


def _read_body(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"--body: cannot read {path}: {exc.strerror or exc}") from None


def _changes(
    *,
    drop: bool,
    if_match: str | None,
    if_unmodified_since: str | None,
    force: bool | None,
    time_out: int | None,
    body: str | None,
    ids: list[str] | None,
) -> Changes:
    if body is not None and len(ids or ()) != 1:
        raise CliError("--body replaces one request: name its record with exactly one --id")
    fields: dict[str, Any] = {
        name: value
        for name, value in (
            ("ifMatch", if_match),
            ("ifUnmodifiedSince", if_unmodified_since),
            ("force", force),
            ("timeOut", time_out),
        )
        if value is not None
    }
    return Changes(drop_preconditions=drop, fields=fields, body=_read_body(body) if body else None)


@dead_letters.command("replay")
def replay_(
    *,
    reason: ReasonOption = None,
    code: CodeOption = None,
    job: JobOption = None,
    since: SinceOption = None,
    ids: IdOption = None,
    all_: AllOption = False,
    limit: LimitOption = None,
    drop_preconditions: Annotated[
        bool,
        typer.Option("--drop-preconditions", help="remove ifMatch, ifNoneMatch, if(Un)ModifiedSince"),
    ] = False,
    if_match: Annotated[str | None, typer.Option("--if-match", help="set ifMatch (an ETag)")] = None,
    if_unmodified_since: Annotated[
        str | None, typer.Option("--if-unmodified-since", help="set ifUnmodifiedSince")
    ] = None,
    force: Annotated[bool | None, typer.Option("--force/--no-force", help="set force")] = None,
    time_out: Annotated[int | None, typer.Option("--time-out", help="set timeOut, seconds")] = None,
    body: Annotated[
        str | None,
        typer.Option("--body", help="a corrected request (a JSON file; - reads stdin) for one --id"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be sent; change nothing")
    ] = False,
    queue: QueueOption = None,
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
    receive_wait: WaitOption = 5.0,
) -> None:
    """Send the chosen records' requests to the deletion queue again, then remove the records.

    The change options edit each request first (a PreconditionFailed record: --drop-preconditions or a
    new --if-match; a stuck deletion: --force); the result is validated with the function's own model.
    Each copy gets a new message id and a `replayOf` property naming the record; the original's
    correlation id and properties are kept, except retryAttempt and originalMessageId. A record is
    removed only after its copy was sent. Records refused as they are (InvalidMessage) are skipped
    unless named with --id or given a corrected --body. Exit 1 if any record was kept or skipped, or an
    --id matched nothing.
    """
    with expected_failures():
        changes = _changes(
            drop=drop_preconditions,
            if_match=if_match,
            if_unmodified_since=if_unmodified_since,
            force=force,
            time_out=time_out,
            body=body,
            ids=ids,
        )
        named = {i.strip() for i in ids or ()}

        def copy(dead_letter: DeadLetter, new_id: str | None = None) -> ReplayCopy:
            is_named = dead_letter.envelope.message_id in named or bool(set(_numbers(dead_letter)) & named)
            if new_id is not None:
                return replay_copy(dead_letter, lambda: new_id, changes=changes, named=is_named)
            return replay_copy(dead_letter, changes=changes, named=is_named)

        sources = Sources.load()
        source = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        target = None if dry_run else deletion_queue(queue, sources)
        with open_dead_letter_queue(connection, source) as (client, receiver):
            selected, missing = _chosen(
                receiver,
                reason=reason,
                code=code,
                job=job,
                since=since,
                ids=ids,
                all_=all_,
                limit=limit,
                verb="replay",
                queue=source,
            )
            if target is None:
                _dry_run(selected, source, changes, lambda d: copy(d, ""))
                raise typer.Exit(EXIT_PARTIAL if missing else 0)
            results = _replay(
                client,
                receiver,
                connection=connection,
                target=target,
                selected=selected,
                wait=receive_wait,
                copy=copy,
            )
        _summarise(results, f"replayed {{replayed}} to queue {target.name}", missing)


def _dry_run(selected: list[DeadLetter], source: Queue, changes: Changes, copy: Any) -> None:
    console = out()
    would = 0
    for dead_letter in selected:
        try:
            made: ReplayCopy = copy(dead_letter)
        except NotReplayableError as exc:
            console.print(Text("would skip   ", style="yellow") + Text(f"{_about(dead_letter)}: {exc}"))
            continue
        line = Text("would replay ", style="green") + Text(_about(dead_letter))
        if changes:
            line.append(f" with {changes.describe()}: {made.body.decode('utf-8', 'replace')}")
        console.print(line)
        would += 1
    console.print(
        Text(
            f"dry run on queue {source.name}: would replay {would}, skip {len(selected) - would};"
            " nothing was sent or removed"
        )
    )


def _printer(total: int, label: str) -> tuple[Any, Any]:
    console = out()
    progress = progress_bar(label, console)
    task = progress.add_task(label, total=total)

    def on_result(result: ReplayResult) -> None:
        dead_letter = result.dead_letter
        job = f" (job {dead_letter.job_id})" if dead_letter.job_id else ""
        line = Text(f"{result.outcome:<10}", style=_STYLES[result.outcome])
        joint = " as " if result.outcome is Outcome.REPLAYED else ": "
        line.append(f"{dead_letter.envelope.ref}{job}{joint}{result.detail}")
        progress.console.print(line)
        progress.advance(task)

    return progress, on_result


def _replay(
    client: ServiceBusClient,
    receiver: Receiver,
    *,
    connection: Connection,
    target: Queue,
    selected: list[DeadLetter],
    wait: float,
    copy: Any,
) -> list[ReplayResult]:
    progress, on_result = _printer(len(selected), "replaying")
    with progress:
        return replay(
            client,
            receiver,
            deletion_queue=target.name,
            selected=selected,
            describe_send_error=lambda exc: describe_service_error(exc, connection, target),
            on_result=on_result,
            max_wait_time=wait,
            copy=copy,
        )


def _summarise(results: list[ReplayResult], done: str, missing: list[str]) -> None:
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    not_removed = sum(r.outcome is Outcome.REPLAYED and not r.removed for r in results)
    summary = (
        done.format(replayed=counts[Outcome.REPLAYED], discarded=counts[Outcome.DISCARDED])
        + f", kept {counts[Outcome.KEPT]}, skipped {counts[Outcome.SKIPPED]}"
    )
    if not_removed:
        summary += f" ({not_removed} replayed but still on the dead-letter queue)"
    if missing:
        summary += f"; {len(missing)} --id matched nothing"
    out().print(Text(summary))
    if counts[Outcome.KEPT] or counts[Outcome.SKIPPED] or not_removed or missing:
        raise typer.Exit(EXIT_PARTIAL)


@dead_letters.command("discard")
def discard_(
    *,
    reason: ReasonOption = None,
    code: CodeOption = None,
    job: JobOption = None,
    since: SinceOption = None,
    ids: IdOption = None,
    all_: AllOption = False,
    limit: LimitOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be removed")] = False,
    dead_letter_queue_: DeadLetterQueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
    receive_wait: WaitOption = 5.0,
) -> None:
    """Remove the chosen records for good, sending nothing: for requests that should not be retried.

    Asks for confirmation (after listing them) unless --yes. Exit 1 if a record was kept, an --id
    matched nothing, or the answer was no.
    """
    with expected_failures():
        sources = Sources.load()
        source = dead_letter_queue(dead_letter_queue_, sources)
        connection = resolve_connection(connection_string, namespace, sources)
        with open_dead_letter_queue(connection, source) as (_, receiver):
            selected, missing = _chosen(
                receiver,
                reason=reason,
                code=code,
                job=job,
                since=since,
                ids=ids,
                all_=all_,
                limit=limit,
                verb="discard",
                queue=source,
            )
            for dead_letter in selected:
                out().print(Text(f"{'would discard' if dry_run else 'to discard'} {_about(dead_letter)}"))
            if dry_run:
                out().print(Text(f"dry run on queue {source.name}: nothing was removed"))
                raise typer.Exit(EXIT_PARTIAL if missing else 0)
            if not yes and not _confirmed(len(selected), source):
                out().print(Text("nothing was discarded"))
                raise typer.Exit(EXIT_PARTIAL)
            progress, on_result = _printer(len(selected), "discarding")
            with progress:
                results = discard(
                    receiver, selected=selected, on_result=on_result, max_wait_time=receive_wait
                )
        _summarise(results, f"discarded {{discarded}} from queue {source.name}", missing)


def _confirmed(count: int, source: Queue) -> bool:
    try:
        return typer.confirm(
            f"Remove these {count} record{'s' * (count != 1)} from queue {source.name} for good?",
            default=False,
            err=True,
        )
    except typer.Abort:  # no answer (end of input)
        return False
