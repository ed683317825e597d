"""How dead letters look: a table, one record in full, and JSON for scripts.

Every value from a message goes into a `Text`, never into markup: a description holding `[/]` is shown,
not interpreted.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from delete_job.records import Received, describe_original
from deleter_cli._deadletter import DeadLetter, Envelope, Kind, NotReplayableError, replay_copy

__all__ = ["detail", "print_wide", "raw_json", "summary_json", "table", "wide_table"]

INDENT = "    "


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shown(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _reason(dead_letter: DeadLetter) -> str:
    return f"{dead_letter.reason} (broker)" if dead_letter.kind is Kind.BROKER else dead_letter.reason


def _answer(dead_letter: DeadLetter) -> str:
    """`412 ConditionNotMet`: Batch's answer, when there was one."""
    return " ".join(str(v) for v in (dead_letter.http_status, dead_letter.batch_error_code) if v)


def _words(*parts: tuple[str, str]) -> list[Text]:
    return [Text(f"{label} {value}" if label else value) for label, value in parts if value]


def _fit(first: Text, pieces: list[Text], width: int) -> list[Text]:
    """`first`, then `pieces` two spaces apart, in lines of at most `width` cells (later lines
    indented); a piece is never split: one longer than a line runs past the edge, an id stays whole."""
    lines: list[Text] = []
    line = first.copy()
    bare = -1  # the first line always has `first`: a piece after it is always two spaces apart
    for piece in pieces:
        if line.cell_len > bare and line.cell_len + 2 + piece.cell_len > width:
            lines.append(line)
            line, bare = Text(INDENT), len(INDENT)
        if line.cell_len > bare:
            line.append("  ")
        line.append_text(piece)
    lines.append(line)
    return lines


def table(dead_letters: Sequence[DeadLetter], title: str, *, width: int) -> RenderableType:
    """The list view, for a terminal of `width` columns (80 and up): each record on a line of its own
    (sequence number, reason, Batch's answer, when, job, message id; ids are never split), and what to
    do, the description, wrapped on the lines under it. `wide_table` has one line per record."""
    parts: list[RenderableType] = [Text(title, style="bold")]
    for dead_letter in dead_letters:
        envelope = dead_letter.envelope
        head = Text(f"#{envelope.sequence_number}", style="bold")
        head.append("  ")
        head.append(_reason(dead_letter), style="yellow" if dead_letter.kind is Kind.BROKER else "")
        pieces = _words(
            ("", _answer(dead_letter)),
            ("", _shown(dead_letter.failed_at)),
            ("job", dead_letter.job_id or ""),
            ("message", envelope.message_id or ""),
        )
        parts.append(Text(""))
        parts += _fit(head, pieces, width)
        if dead_letter.description:
            description = Text(" ".join(dead_letter.description.split()), style="dim")
            parts.append(Padding(description, (0, 0, 0, len(INDENT))))
    return Group(*parts)


def print_wide(console: Console, renderable: RenderableType) -> None:
    """Print at the renderable's natural width, past the terminal's edge if need be (--wide)."""
    width = Measurement.get(console, console.options.update_width(100_000), renderable).maximum
    terminal = console.width
    console.width = max(width, terminal)  # print() caps a width at the console's own
    try:
        console.print(renderable, soft_wrap=False, crop=False)
    finally:
        console.width = terminal


def wide_table(dead_letters: Sequence[DeadLetter], title: str) -> Table:
    """`list --wide`: one line per record with every column and the whole description (for a wide
    terminal, or a file)."""
    grid = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    grid.add_column("#", justify="right", no_wrap=True)
    for name in ("reason", "job"):
        grid.add_column(name, no_wrap=True)
    grid.add_column("HTTP", justify="right", no_wrap=True)
    grid.add_column("Batch error", no_wrap=True)
    grid.add_column("failed at (UTC)", no_wrap=True)
    grid.add_column("message id", no_wrap=True)
    grid.add_column("description", no_wrap=True)
    for dead_letter in dead_letters:
        envelope = dead_letter.envelope
        grid.add_row(
            Text(str(envelope.sequence_number)),
            Text(_reason(dead_letter), style="yellow" if dead_letter.kind is Kind.BROKER else ""),
            Text(dead_letter.job_id or ""),
            Text(str(dead_letter.http_status or "")),
            Text(dead_letter.batch_error_code or ""),
            Text(_shown(dead_letter.failed_at)),
            Text(envelope.message_id or ""),
            Text(" ".join(dead_letter.description.split())),
        )
    return grid


def _replayable(dead_letter: DeadLetter) -> tuple[bool, str | None]:
    try:
        replay_copy(dead_letter, new_id=lambda: "")
    except NotReplayableError as exc:
        return False, str(exc)
    return True, None


def summary_json(dead_letter: DeadLetter) -> dict[str, Any]:
    """One line of `list --json`."""
    envelope = dead_letter.envelope
    replayable, why_not = _replayable(dead_letter)
    return {
        "sequenceNumber": envelope.sequence_number,
        "messageId": envelope.message_id,
        "kind": str(dead_letter.kind),
        "reason": dead_letter.reason,
        "jobId": dead_letter.job_id,
        "account": dead_letter.account,
        "httpStatus": dead_letter.http_status,
        "batchErrorCode": dead_letter.batch_error_code,
        "failedAt": _iso(dead_letter.failed_at),
        "description": dead_letter.description,
        "source": dead_letter.source,
        "enqueuedTimeUtc": _iso(envelope.enqueued_time_utc),
        "replayable": replayable,
        "notReplayableBecause": why_not,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def raw_json(envelope: Envelope) -> dict[str, Any]:
    """The message as it is on the queue (`show --json`): its properties, and its body parsed when
    it is JSON, else as text, else base64."""
    raw: dict[str, Any] = {
        "sequenceNumber": envelope.sequence_number,
        "messageId": envelope.message_id,
        "correlationId": envelope.correlation_id,
        "subject": envelope.subject,
        "contentType": envelope.content_type,
        "enqueuedTimeUtc": _iso(envelope.enqueued_time_utc),
        "deliveryCount": envelope.delivery_count,
        "applicationProperties": {k: _plain(v) for k, v in envelope.application_properties.items()},
    }
    body = envelope.body
    if body is None:
        raw["body"] = None
        return raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raw["bodyBase64"] = base64.b64encode(body).decode("ascii")
        return raw
    try:
        raw["body"] = json.loads(text)
    except (ValueError, RecursionError):
        raw["body"] = text
    return raw


def _fields(rows: Sequence[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        if value is None or value == "":
            continue
        grid.add_row(Text(name), Text(value if isinstance(value, str) else json.dumps(_plain(value))))
    return grid


def _body(text: str | None) -> RenderableType:
    if text is None:
        return Text("(no body)", style="dim")
    try:
        json.loads(text)
        return JSON(text)
    except (ValueError, RecursionError):
        return Text(text)


def _batch_error(record: dict[str, Any]) -> RenderableType | None:
    error = record.get("batchError")
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    value = message.get("value") if isinstance(message, dict) else message
    rows: list[tuple[str, Any]] = [("code", error.get("code")), ("message", value)]
    values = error.get("values")
    for item in values if isinstance(values, list) else []:
        if isinstance(item, dict):
            rows.append((str(item.get("key", "")), item.get("value")))
    return Panel(_fields(rows), title="Batch error", title_align="left")


def _as_original(envelope: Envelope) -> dict[str, Any]:
    """A dead letter that is the message itself, described as a record describes its original."""
    original = describe_original(
        Received(
            message_id=envelope.message_id or "",
            body=envelope.body or b"",
            correlation_id=envelope.correlation_id,
            content_type=envelope.content_type,
            enqueued_time_utc=envelope.enqueued_time_utc,
            delivery_count=envelope.delivery_count,
            application_properties=envelope.application_properties,
        )
    )
    if envelope.body is None:  # not binary data: there is no body to show
        original.pop("body", None)
    return original


def _original(original: dict[str, Any], title: str = "original message") -> RenderableType:
    properties = original.get("applicationProperties")
    rows: list[tuple[str, Any]] = [
        (name, original.get(name))
        for name in ("messageId", "correlationId", "contentType", "enqueuedTimeUtc", "deliveryCount")
    ]
    rows += [(f"property {k}", v) for k, v in (properties.items() if isinstance(properties, dict) else ())]
    if original.get("bodyTruncated"):
        rows.append(("body", f"cut at 64 KiB (it had {original.get('bodySize', '?')} bytes)"))
    if "bodyBase64" in original:
        rows.append(("bodyBase64", original.get("bodyBase64")))
        parts: list[RenderableType] = [_fields(rows)]
    else:
        body = original.get("body")
        parts = [_fields(rows), _body(body if isinstance(body, str) else None)]
    return Panel(Group(*parts), title=title, title_align="left")


def detail(dead_letter: DeadLetter) -> RenderableType:
    """One record in full (`show`)."""
    envelope = dead_letter.envelope
    record = dead_letter.record or {}
    replayable, why_not = _replayable(dead_letter)
    head = _fields(
        [
            ("reason", _reason(dead_letter)),
            ("kind", str(dead_letter.kind)),
            ("message id", envelope.message_id),
            ("sequence number", envelope.sequence_number),
            ("job", dead_letter.job_id),
            ("account", dead_letter.account),
            ("HTTP status", dead_letter.http_status),
            ("failed at", _iso(dead_letter.failed_at)),
            ("attempts", record.get("attempts")),
            ("retry attempt", record.get("retryAttempt")),
            ("request id", record.get("requestId")),
            ("client request id", record.get("clientRequestId")),
            ("dead-lettered from", dead_letter.source),
            ("replayable", "yes" if replayable else f"no: {why_not}"),
        ]
    )
    parts: list[RenderableType] = [
        head,
        Panel(Text(dead_letter.description or "(none)"), title="description"),
    ]
    batch_error = _batch_error(record)
    if batch_error is not None:
        parts.append(batch_error)
    if dead_letter.kind is Kind.FAILURE_RECORD and isinstance(record.get("originalMessage"), dict):
        parts.append(_original(record["originalMessage"]))
    else:
        title = "the message (the original request)" if dead_letter.kind is Kind.BROKER else "the message"
        parts.append(_original(_as_original(envelope), title=title))
    return Group(*parts)
