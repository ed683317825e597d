"""The command line: `enqueue` here, `dead-letters list|show` in `_dead_letters_app`, `dead-letters
replay|discard` in `_replay_app`."""

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from deleter_cli import _replay_app  # noqa: F401 - its commands register on `dead_letters`
from deleter_cli._common import (
    ConnectionStringOption,
    NamespaceOption,
    QueueOption,
    deletion_queue,
    err,
    expected_failures,
    out,
    progress_bar,
    resolve_connection,
)
from deleter_cli._config import Connection, Queue, Sources, open_client
from deleter_cli._dead_letters_app import dead_letters
from deleter_cli._enqueue import Accounts, Line, read_lines, request_body, send, validate
from deleter_cli._errors import (
    EXIT_PARTIAL,
    EXIT_SERVICE,
    SERVICE_ERRORS,
    CliError,
    describe_service_error,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="deleter",
    help=(
        "Operate the Batch job deleter: put deletion requests on its queue, read and replay its dead"
        " letters. Settings come from the options, else the environment, else local.settings.json"
        " (else local.settings.sample.json) in the current directory. Exit codes: 0 done, 1 partly done"
        " (a line rejected, a record kept or skipped), 2 usage or settings, 3 Service Bus failed."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals could hold the connection string
)
app.add_typer(dead_letters, name="dead-letters")

BATCH_ACCOUNTS = "BATCH_ACCOUNTS"
_REQUEST_OPTIONS = "--job-id, --account, --force, --time-out, --if-*, --client-request-id, --reason"


def _read_input(file: str) -> tuple[bytes, str]:
    if file == "-":
        return sys.stdin.buffer.read(), "stdin"
    try:
        return Path(file).read_bytes(), file
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None


def _where(line: Line) -> str:
    return f"line {line.number}" if line.number is not None else "the request"


def _requests(file: str | None, single: dict[str, object], message_id: str | None) -> list[Line]:
    """The request from the options, or the lines of `file`."""
    if file is None:
        if single["jobId"] is None:
            raise CliError("give --job-id (one request) or --file (JSON lines; - reads stdin)")
        return [Line(None, request_body(single))]
    if any(value is not None for value in single.values()) or message_id is not None:
        raise CliError(f"--file takes no request options ({_REQUEST_OPTIONS}) and no --message-id")
    data, name = _read_input(file)
    lines = read_lines(data)
    if not lines:
        raise CliError(f"{name} holds no requests (expected one JSON object a line)")
    return lines


def _send(
    connection: Connection,
    target: Queue,
    valid: list[Line],
    *,
    message_id: str | None,
    correlation_id: str | None,
) -> list[str]:
    """Send `valid` with a progress bar; the message ids sent. A failure says how many went."""
    sent: list[str] = []
    if not valid:
        return sent
    progress = progress_bar("sending", err())
    try:
        with progress, open_client(connection) as client, client.get_queue_sender(target.name) as sender:
            task = progress.add_task("send", total=len(valid))

            def on_sent(ids: Sequence[str]) -> None:
                sent.extend(ids)
                progress.advance(task, len(ids))

            send(sender, valid, message_id=message_id, correlation_id=correlation_id, on_sent=on_sent)
    except SERVICE_ERRORS as exc:
        problem = describe_service_error(exc, connection, target)
        raise CliError(
            f"{problem}; {len(sent)} of {len(valid)} valid requests were sent before the failure",
            exit_code=EXIT_SERVICE,
        ) from None
    return sent


def _accounts(sources: Sources, connection_string: str | None, namespace: str | None) -> Accounts | None:
    """BATCH_ACCOUNTS, when it describes the deployment the tool talks to: it comes from the same place
    (the environment, or one local settings file) as the connection. Else the function's list is unknown
    here, and the function itself judges the account."""
    setting = sources.get(BATCH_ACCOUNTS)
    if setting is None:
        return None
    try:
        connection = resolve_connection(connection_string, namespace, sources)
    except CliError:
        return None
    place = setting.source.partition(" in ")[2]
    if place != connection.source.partition(" in ")[2]:
        return None
    try:
        names = json.loads(setting.value)
    except ValueError:
        return None
    return Accounts(frozenset(names), setting.source) if isinstance(names, dict) else None


@app.command()
def enqueue(
    *,
    job_id: Annotated[str | None, typer.Option("--job-id", help="the Batch job to delete")] = None,
    account: Annotated[
        str | None, typer.Option(help="a Batch account listed in BATCH_ACCOUNTS (absent = the default)")
    ] = None,
    force: Annotated[bool | None, typer.Option("--force/--no-force", help="sent as force=true|false")] = None,
    time_out: Annotated[int | None, typer.Option("--time-out", help="Batch's timeOut, seconds")] = None,
    if_match: Annotated[str | None, typer.Option("--if-match", help="an ETag")] = None,
    if_none_match: Annotated[str | None, typer.Option("--if-none-match", help="an ETag")] = None,
    if_modified_since: Annotated[
        str | None, typer.Option("--if-modified-since", help="2026-11-28T10:00:00Z or an RFC 7231 date")
    ] = None,
    if_unmodified_since: Annotated[
        str | None, typer.Option("--if-unmodified-since", help="2026-11-28T10:00:00Z or an RFC 7231 date")
    ] = None,
    client_request_id: Annotated[
        str | None, typer.Option("--client-request-id", help="a GUID sent to Batch on every attempt")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="free text for logs and failure records")] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="requests as JSON lines, one object a line; - reads stdin"),
    ] = None,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="the message id (one request only; default: new)")
    ] = None,
    correlation_id: Annotated[str | None, typer.Option("--correlation-id", help="for every message")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate only; send nothing")] = False,
    queue: QueueOption = None,
    connection_string: ConnectionStringOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Put deletion requests on the deletion queue: one from the options, or many from --file.

    Every request is validated with the function's own model first; a rejected one is reported (with
    its line number) and not sent, the valid ones are sent. Exit 1 if any was rejected.
    """
    with expected_failures():
        single: dict[str, object] = {
            "jobId": job_id,
            "account": account,
            "force": force,
            "timeOut": time_out,
            "ifMatch": if_match,
            "ifNoneMatch": if_none_match,
            "ifModifiedSince": if_modified_since,
            "ifUnmodifiedSince": if_unmodified_since,
            "clientRequestId": client_request_id,
            "reason": reason,
        }
        lines = _requests(file, single, message_id)
        sources = Sources.load()
        target = None if dry_run else deletion_queue(queue, sources)
        connection = None if dry_run else resolve_connection(connection_string, namespace, sources)

        valid, rejected = validate(lines, _accounts(sources, connection_string, namespace))
        for refused in rejected:
            where = f"line {refused.number}" if refused.number is not None else "rejected"
            err().print(Text(f"{where}: {refused.problem}", style="red"))
        if target is None or connection is None:
            out().print(f"dry run: {len(valid)} valid, {len(rejected)} rejected; nothing was sent")
            if rejected:
                raise typer.Exit(EXIT_PARTIAL)
            return

        sent = _send(connection, target, valid, message_id=message_id, correlation_id=correlation_id)
        if len(lines) == 1 and sent:
            out().print(Text(f"sent {_where(lines[0])} as message {sent[0]} to queue {target.name}"))
        out().print(Text(f"sent {len(sent)}, rejected {len(rejected)} (queue {target.name})"))
        if rejected:
            raise typer.Exit(EXIT_PARTIAL)


def main(prog_name: str = "deleter") -> None:
    """The `deleter` console script (and `python -m deleter_cli`)."""
    app(prog_name=prog_name)
