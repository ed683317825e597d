"""Deletion requests for the queue: read, validated with the function's own model (`parse_request`)
before anything is sent, then sent in batches, each with a fresh message id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from azure.servicebus import ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from delete_job.request import InvalidMessageError, parse_request

__all__ = ["CONTENT_TYPE", "Line", "Rejected", "read_lines", "request_body", "send", "validate"]

CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Line:
    number: int | None  # 1-based line of the file; None for a request built from options
    body: bytes


@dataclass(frozen=True)
class Rejected:
    number: int | None
    problem: str


def read_lines(data: bytes) -> list[Line]:
    """One request per non-blank line (JSON lines), sent exactly as written, without the line end."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a file's byte order mark is the editor's, not a request's
    lines: list[Line] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        body = raw.strip(b" \t\r")
        if body:
            lines.append(Line(number, body))
    return lines


def request_body(fields: Mapping[str, object]) -> bytes:
    """The JSON body of a request given as options; options not given are left out."""
    present = {name: value for name, value in fields.items() if value is not None}
    return json.dumps(present, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Accounts:
    """The BATCH_ACCOUNTS names the function will accept, and where the tool read them."""

    names: frozenset[str]
    source: str


def validate(lines: Sequence[Line], accounts: Accounts | None = None) -> tuple[list[Line], list[Rejected]]:
    """Split `lines` into valid requests and rejected ones (with the model's one-line reason). With
    `accounts`, an account the function's BATCH_ACCOUNTS does not list is refused, as the function would."""
    valid: list[Line] = []
    rejected: list[Rejected] = []
    for line in lines:
        try:
            request = parse_request(line.body)
        except InvalidMessageError as exc:
            rejected.append(Rejected(line.number, exc.description))
            continue
        if accounts is not None and request.account is not None and request.account not in accounts.names:
            listed = ", ".join(sorted(accounts.names)) or "none"
            rejected.append(
                Rejected(
                    line.number,
                    f"account {request.account!r} is not listed in BATCH_ACCOUNTS ({accounts.source}:"
                    f" {listed}); the function would refuse it",
                )
            )
            continue
        valid.append(line)
    return valid, rejected


def send(
    sender: ServiceBusSender,
    lines: Sequence[Line],
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    on_sent: Callable[[Sequence[str]], None] = lambda ids: None,
) -> None:
    """Send `lines` in as few batches as fit; `on_sent` gets the message ids of each batch sent.
    Raises on the first batch Service Bus does not take (the batches before it were sent)."""
    batch = sender.create_message_batch()
    ids: list[str] = []
    for line in lines:
        this_id = message_id or str(uuid.uuid4())
        message = ServiceBusMessage(
            line.body, message_id=this_id, content_type=CONTENT_TYPE, correlation_id=correlation_id
        )
        try:
            batch.add_message(message)
        except MessageSizeExceededError:
            if not ids:
                raise  # it does not fit even alone
            sender.send_messages(batch)
            on_sent(ids)
            batch, ids = sender.create_message_batch(), []
            batch.add_message(message)
        ids.append(this_id)
    if ids:
        sender.send_messages(batch)
        on_sent(ids)
