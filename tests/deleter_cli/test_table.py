"""The dead-letter list at 80, 100 and 120 columns: snapshots of what an operator sees (pure rendering;
the listing itself runs against the emulator in test_dead_letters). UPDATE_SNAPSHOTS=1 rewrites them."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from delete_job.decision import Outcome
from deleter_cli._deadletter import DeadLetter, Envelope, read
from deleter_cli._render import print_wide, table, wide_table
from tests.deleter_cli.test_dead_letters import CONDITION_NOT_MET, SERVER_BUSY, record

SNAPSHOTS = Path(__file__).parent / "snapshots"
AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
LONG_ID = "3f1c2a9e-7b4d-4e8a-9c1f-2d5e6a7b8c9d:failed"  # a producer's GUID message id, as records get


def _dead_letters() -> list[DeadLetter]:
    records = [
        record(
            Outcome.PRECONDITION_FAILED,
            "m-412",
            b'{"jobId": "protected", "ifMatch": "0x8D0000000000000"}',
            status=412,
            error=CONDITION_NOT_MET,
            now=AT,
        ),
        record(Outcome.INVALID_MESSAGE, "m-bad", b'{"jobId": "x", "ifmatch": "0x1"}', now=AT),
        record(
            Outcome.RETRIES_EXHAUSTED, "m-503", b'{"jobId": "busy-1"}', status=503, error=SERVER_BUSY, now=AT
        ),
    ]
    envelopes = [
        Envelope(
            sequence_number=number,
            message_id=message.message_id,
            body=message.body,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            application_properties=dict(message.application_properties),
        )
        for number, message in enumerate(records, start=1)
    ]
    envelopes.append(
        Envelope(
            sequence_number=1042,
            message_id=LONG_ID,
            body=b'{"jobId": "nightly-render-2026-11-28-shard-0042"}',
            enqueued_time_utc=AT,
            application_properties={
                "DeadLetterReason": "MaxDeliveryCountExceeded",
                "DeadLetterErrorDescription": "Message could not be consumed after 10 delivery attempts.",
                "DeadLetterSource": "batch-job-deletions",
            },
        )
    )
    return [read(envelope) for envelope in envelopes]


def _render(width: int, *, wide: bool = False) -> str:
    screen = io.StringIO()
    console = Console(file=screen, width=width, color_system=None, highlight=False)
    items = _dead_letters()
    title = f"{len(items)} dead letters on queue batch-job-deletions-failed"
    if wide:
        print_wide(console, wide_table(items, title))
    else:
        console.print(table(items, title, width=width), soft_wrap=False)
    return "\n".join(line.rstrip() for line in screen.getvalue().splitlines()) + "\n"


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_list_fits_the_terminal(width: int) -> None:
    """Nothing past the edge, every id whole on one line, every description there (as a snapshot)."""
    text = _render(width)
    snapshot = SNAPSHOTS / f"list-{width}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    for dead_letter in _dead_letters():
        assert any(f"message {dead_letter.envelope.message_id}" in line for line in lines)
        assert any(f"job {dead_letter.job_id}" in line for line in lines)
    assert "Message could not be consumed after 10 delivery attempts." in " ".join(text.split())
    assert ".. " not in text  # Batch's message ends with a period; the description adds none
    assert text == snapshot.read_text(encoding="utf-8")


def test_wide_is_one_line_per_record() -> None:
    """--wide: every column and the whole description on one line per record, whatever the width."""
    lines = [line for line in _render(80, wide=True).splitlines() if LONG_ID in line]
    assert len(lines) == 1
    assert "nightly-render-2026-11-28-shard-0042" in lines[0]
    assert "Message could not be consumed after 10 delivery attempts." in lines[0]
