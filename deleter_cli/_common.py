"""What every command shares: the connection and queue options, the consoles, and the one place where
an expected failure becomes a message and an exit code instead of a stack trace."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from deleter_cli._config import (
    CONNECTION_STRING,
    DEAD_LETTER_QUEUE,
    DELETION_QUEUE,
    NAMESPACE,
    Connection,
    Queue,
    Sources,
)
from deleter_cli._errors import CliError

__all__ = [
    "ConnectionStringOption",
    "DeadLetterQueueOption",
    "NamespaceOption",
    "QueueOption",
    "dead_letter_queue",
    "deletion_queue",
    "err",
    "expected_failures",
    "out",
    "progress_bar",
    "resolve_connection",
]

ConnectionStringOption = Annotated[
    str | None,
    typer.Option(
        "--connection-string",
        help=f"Service Bus connection string (env: {CONNECTION_STRING}); prefer the variable: an option"
        " shows in the shell history. Never printed.",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help=f"Service Bus namespace, e.g. mynamespace.servicebus.windows.net, reached with your own Azure"
        f" sign-in (DefaultAzureCredential) (env: {NAMESPACE})",
        show_default=False,
    ),
]
QueueOption = Annotated[
    str | None,
    typer.Option("--queue", help=f"the deletion queue (env: {DELETION_QUEUE})", show_default=False),
]
DeadLetterQueueOption = Annotated[
    str | None,
    typer.Option(
        "--dead-letter-queue",
        help=f"the queue of failure records and forwarded dead letters (env: {DEAD_LETTER_QUEUE})",
        show_default=False,
    ),
]


def out() -> Console:
    """Results (stdout)."""
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    """Problems and notes (stderr), so that stdout stays what a script reads."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def progress_bar(label: str, console: Console) -> Progress:
    """A bar on a terminal; nothing when the output goes to a file or a pipe."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@contextmanager
def expected_failures() -> Iterator[None]:
    """A `CliError` inside ends the command with its message and exit code, without a traceback."""
    try:
        yield
    except CliError as exc:
        err().print(Text(f"error: {exc.message}", style="red"))
        raise typer.Exit(exc.exit_code) from None


def resolve_connection(
    connection_string: str | None, namespace: str | None, sources: Sources | None = None
) -> Connection:
    return Connection.resolve(connection_string, namespace, sources or Sources.load())


def deletion_queue(option: str | None, sources: Sources | None = None) -> Queue:
    return Queue.resolve(option, "--queue", DELETION_QUEUE, sources or Sources.load(), "deletion queue")


def dead_letter_queue(option: str | None, sources: Sources | None = None) -> Queue:
    return Queue.resolve(
        option, "--dead-letter-queue", DEAD_LETTER_QUEUE, sources or Sources.load(), "dead-letter queue"
    )
