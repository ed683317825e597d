"""`python -m deleter_cli dead-letters replay` against the real Service Bus emulator: what reaches the
deletion queue, and what stays on the dead-letter queue (the records of `test_cli_dead_letters`)."""

from __future__ import annotations

import json
import uuid

from azure.servicebus import ServiceBusReceivedMessage

from tests.deleter_cli.test_dead_letters import (
    BROKER_BODY,
    BROKER_ID,
    RECORDS,
    UNREADABLE_ID,
    DeadLetters,
    dead_letters,
)
from tests.deleter_cli.test_enqueue import body, flat, reader, run

__all__ = ["dead_letters", "reader"]  # the fixtures, shared with the listing tests

EVERYTHING = {*RECORDS, BROKER_ID, UNREADABLE_ID}


def replay(dead_letters: DeadLetters, *args: str, queue: str | None = None) -> tuple[int, str, str]:
    result = run(
        "dead-letters", "replay", *dead_letters.args(*args), "--queue", queue or dead_letters.deletion_queue
    )
    assert "Traceback" not in result.output
    return result.exit_code, flat(result.stdout), flat(result.stderr)


def properties(message: ServiceBusReceivedMessage) -> dict[str, object]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (message.application_properties or {}).items()
    }


def test_replay_dry_run_sends_and_removes_nothing(dead_letters: DeadLetters) -> None:
    """--dry-run says what would be replayed and skipped, and changes no queue."""
    code, out, _ = replay(dead_letters, "--all", "--dry-run")
    assert code == 0
    assert "would replay m-412:failed (PreconditionFailed, job protected)" in out
    assert f"would replay {BROKER_ID} (MaxDeliveryCountExceeded, job stuck-1)" in out
    assert "would skip m-bad:failed (InvalidMessage, job x): the original request is invalid" in out
    assert f"would skip {UNREADABLE_ID} (Unreadable)" in out
    assert "would replay 4, skip 2; nothing was sent or removed" in out
    assert dead_letters.ids() == EVERYTHING
    assert all(m.delivery_count == 0 for m in dead_letters.peek())
    assert dead_letters.reader.take_all(dead_letters.deletion_queue, 0) == []


def test_replay_needs_a_selection(dead_letters: DeadLetters) -> None:
    """Without a filter, --id or --all nothing happens (exit 2)."""
    code, _, err = replay(dead_letters)
    assert code == 2
    assert "pass --all" in err
    assert dead_letters.ids() == EVERYTHING


def test_replay_sends_a_fresh_copy_then_removes_the_record(dead_letters: DeadLetters) -> None:
    """The original body, a new message id, `replayOf`, the original's correlation id and properties."""
    code, out, _ = replay(dead_letters, "--id", "m-412:failed")
    assert code == 0, out
    assert "replayed 1 to queue" in out
    assert "kept 0, skipped 0" in out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert body(copy) == b'{"jobId": "protected", "ifMatch": "0x8D0000000000000"}'
    assert uuid.UUID(str(copy.message_id)).version == 4
    assert str(copy.message_id) in out
    assert copy.correlation_id == "corr-412"
    assert copy.content_type == "application/json"
    assert properties(copy) == {"team": "data", "replayOf": "m-412:failed"}
    assert dead_letters.ids() == EVERYTHING - {"m-412:failed"}


def test_replay_of_a_retry_copy_starts_afresh(dead_letters: DeadLetters) -> None:
    """A record of a delayed-retry copy is replayed without retryAttempt and originalMessageId."""
    code, out, _ = replay(dead_letters, "--reason", "RetriesExhausted", "--code", "ServerBusy")
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert body(copy) == b'{"jobId": "busy-1"}'
    assert properties(copy) == {"team": "ml", "replayOf": "m-503:failed"}
    assert copy.correlation_id == "corr-503"
    assert dead_letters.ids() == EVERYTHING - {"m-503:failed"}


def test_replay_a_broker_dead_letter(dead_letters: DeadLetters) -> None:
    """The forwarded message's own body goes back, without the broker's or the retry properties."""
    code, out, _ = replay(dead_letters, "--reason", "MaxDeliveryCountExceeded")
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert body(copy) == BROKER_BODY
    assert copy.message_id != BROKER_ID
    assert copy.correlation_id == "corr-stuck"
    assert properties(copy) == {"team": "ops", "replayOf": BROKER_ID}
    assert dead_letters.ids() == EVERYTHING - {BROKER_ID}


def test_replay_skips_what_cannot_be_replayed(dead_letters: DeadLetters) -> None:
    """An invalid original and an unreadable message are skipped and kept (exit 1); the rest go."""
    code, out, _ = replay(dead_letters, "--reason", "InvalidMessage", "--reason", "Unreadable", "--job", "x")
    assert code == 1
    assert "skipped m-bad:failed (job x): the original request is invalid" in out
    assert "replayed 0 to queue" in out
    assert "skipped 1" in out
    code, out, _ = replay(dead_letters, "--all")
    assert code == 1
    assert f"skipped {UNREADABLE_ID}: not a failure record or a broker dead letter" in out
    assert "replayed 4 to queue" in out
    assert "kept 0, skipped 2" in out
    assert dead_letters.ids() == {"m-bad:failed", UNREADABLE_ID}
    assert len(dead_letters.reader.take_all(dead_letters.deletion_queue, 4)) == 4
    # What the skipped ones went through: received once each at most, then abandoned, not lost.
    assert all((m.delivery_count or 0) <= 1 for m in dead_letters.peek())


def test_replay_keeps_the_record_when_the_send_fails(dead_letters: DeadLetters) -> None:
    """A deletion queue that does not exist: the record is abandoned and kept, exit 1, the reason shown."""
    code, out, _ = replay(dead_letters, "--job", "protected", "--job", "stuck-1", queue="no-such-queue")
    assert code == 1
    assert "kept m-412:failed (job protected): the copy was not sent" in out
    assert "queue 'no-such-queue' (from --queue) does not exist" in out
    assert "replayed 0 to queue no-such-queue, kept 2, skipped 0" in out
    assert dead_letters.ids() == EVERYTHING
    code, out, _ = replay(dead_letters, "--job", "protected")  # and it can be replayed later
    assert code == 0, out
    assert dead_letters.ids() == EVERYTHING - {"m-412:failed"}


def test_replay_json_of_list_matches_what_replay_takes(dead_letters: DeadLetters) -> None:
    """`list --json` marks as replayable exactly the records `replay --all` replays."""
    result = run("dead-letters", "list", "--json", *dead_letters.args())
    replayable = {
        line["messageId"] for line in map(json.loads, result.stdout.splitlines()) if line["replayable"]
    }
    replay(dead_letters, "--all")
    assert dead_letters.ids() == EVERYTHING - replayable
