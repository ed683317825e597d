"""Failures an operator can act on: one message, no stack trace, an exit code a script can test.

    exit 0   everything asked for was done
    exit 1   partly done: a line was rejected, a record was kept or skipped (the summary says which)
    exit 2   a usage or settings problem (a missing connection or queue, a bad option): nothing was done
    exit 3   Service Bus refused or could not be reached (queue not found, sign-in, network)

`CliError` carries the message and the exit code; `service_errors()` turns the SDK's and
azure-identity's exceptions into one, naming the queue and the setting it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus.exceptions import (
    MessagingEntityDisabledError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
)

if TYPE_CHECKING:
    from deleter_cli._config import Connection, Queue

__all__ = [
    "EXIT_PARTIAL",
    "EXIT_SERVICE",
    "EXIT_USAGE",
    "SERVICE_ERRORS",
    "CliError",
    "describe_service_error",
    "service_errors",
]

EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3
# What a Service Bus call raises when the service or the sign-in fails (not a bug here).
SERVICE_ERRORS = (ServiceBusError, ClientAuthenticationError)


class CliError(Exception):
    """An expected failure: `message` is shown as is (it never holds a secret), then exit `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]


def describe_service_error(exc: BaseException, connection: Connection, queue: Queue | None) -> str:
    """One line for a Service Bus failure: what went wrong, with which queue or setting, what to do."""
    where = f"queue {queue.name!r} (from {queue.source})" if queue else "the namespace"
    detail = connection.redact(_first_line(exc))
    if isinstance(exc, MessagingEntityNotFoundError):
        text = (
            f"{where} does not exist in {connection.namespace}; check the queue name"
            f" and the namespace (from {connection.source})"
        )
    elif isinstance(exc, MessagingEntityDisabledError):
        text = f"{where} is disabled in {connection.namespace}"
    elif isinstance(exc, ServiceBusAuthorizationError):
        text = (
            f"not authorized on {where} in {connection.namespace}: sending needs the Azure Service Bus"
            f" Data Sender role, reading and replaying also Data Receiver ({detail})"
        )
    elif isinstance(exc, ServiceBusAuthenticationError | ClientAuthenticationError):
        hint = (
            "check the connection string's key"
            if connection.connection_string
            else "sign in (az login) or set AZURE_CLIENT_ID / AZURE_TENANT_ID for DefaultAzureCredential"
        )
        text = f"could not sign in to {connection.namespace} (from {connection.source}): {hint} ({detail})"
    elif isinstance(exc, ServiceBusConnectionError | ServiceBusCommunicationError | OperationTimeoutError):
        text = f"could not reach Service Bus at {connection.namespace} (from {connection.source}): {detail}"
    else:
        text = f"Service Bus failed on {where}: {detail}"
    return connection.redact(text)


@contextmanager
def service_errors(connection: Connection, queue: Queue | None) -> Iterator[None]:
    """Inside: a Service Bus or sign-in failure becomes a `CliError` (exit 3) naming `queue`."""
    try:
        yield
    except SERVICE_ERRORS as exc:
        raise CliError(describe_service_error(exc, connection, queue), exit_code=EXIT_SERVICE) from None
