"""`dead-letters replay` with changes, and `dead-letters discard`, against the real Service Bus emulator
(the records of `test_dead_letters`): what the operator's records tell them to do can be done."""

from __future__ import annotations

import json
from pathlib import Path

from shared.servicebus import OutgoingMessage
from tests.deleter_cli.test_dead_letters import BROKER_ID, RECORDS, UNREADABLE_ID, DeadLetters, _send
from tests.deleter_cli.test_enqueue import body, flat, run
from tests.deleter_cli.test_replay import dead_letters, reader, replay
from tests.polling import wait_for

__all__ = ["dead_letters", "reader"]

EVERYTHING = {*RECORDS, BROKER_ID, UNREADABLE_ID}


def discard(dead_letters: DeadLetters, *args: str, answer: str | None = None) -> tuple[int, str]:
    result = run("dead-letters", "discard", *dead_letters.args(*args), stdin=answer)
    assert "Traceback" not in result.output
    return result.exit_code, flat(result.output)


def test_replay_without_the_stale_precondition(dead_letters: DeadLetters) -> None:
    """A PreconditionFailed record replayed with --drop-preconditions: the dry run shows the new request,
    the copy goes without ifMatch, and no new record is needed to find that out."""
    code, out, _ = replay(dead_letters, "--id", "m-412:failed", "--drop-preconditions", "--dry-run")
    assert code == 0, out
    would = "would replay m-412:failed (PreconditionFailed, job protected) with preconditions removed:"
    assert f'{would} {{"jobId": "protected"}}' in out
    assert dead_letters.reader.take_all(dead_letters.deletion_queue, 0) == []
    code, out, _ = replay(dead_letters, "--id", "m-412:failed", "--drop-preconditions")
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert json.loads(body(copy)) == {"jobId": "protected"}
    assert dead_letters.ids() == EVERYTHING - {"m-412:failed"}


def test_replay_with_new_values_validated_by_the_contract(dead_letters: DeadLetters) -> None:
    """--if-match, --force, --time-out are set in the request; a value the contract refuses sends
    nothing and keeps the record (exit 1)."""
    code, out, _ = replay(dead_letters, "--id", "m-412:failed", "--time-out", "0")
    assert code == 1
    assert "skipped m-412:failed (job protected): the changed request is invalid (timeOut" in out
    assert dead_letters.ids() == EVERYTHING
    code, out, _ = replay(
        dead_letters, "--id", "m-412:failed", "--if-match", "0x8DD", "--force", "--time-out", "30"
    )
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert json.loads(body(copy)) == {"jobId": "protected", "ifMatch": "0x8DD", "force": True, "timeOut": 30}


def test_replay_all_skips_what_cannot_succeed_unchanged_unless_given_a_fixed_body(
    dead_letters: DeadLetters, tmp_path: Path
) -> None:
    """--all leaves the InvalidMessage record; --id with a corrected --body replays it."""
    code, out, _ = replay(dead_letters, "--reason", "InvalidMessage")
    assert code == 1
    assert "skipped m-bad:failed (job x): the original request is invalid" in out
    fixed = tmp_path / "fixed.json"
    fixed.write_text('{"jobId": "x", "ifMatch": "0x1"}')
    code, out, _ = replay(dead_letters, "--id", "m-bad:failed", "--body", str(fixed))
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert json.loads(body(copy)) == {"jobId": "x", "ifMatch": "0x1"}
    assert dead_letters.ids() == EVERYTHING - {"m-bad:failed"}


def test_an_id_that_matches_nothing_exits_1(dead_letters: DeadLetters) -> None:
    """replay and discard of an unknown --id say so and exit 1, as show does; nothing changes."""
    code, out, err = replay(dead_letters, "--id", "does-not-exist:failed")
    assert code == 1
    assert "no message 'does-not-exist:failed' on queue" in err
    code, out = discard(dead_letters, "--id", "does-not-exist:failed", "--yes")
    assert code == 1
    assert "no message 'does-not-exist:failed' on queue" in out
    assert dead_letters.ids() == EVERYTHING


def test_discard_asks_then_removes_only_what_was_chosen(dead_letters: DeadLetters) -> None:
    """No (or no answer) keeps everything, exit 1; yes removes the chosen records and sends nothing."""
    code, out = discard(dead_letters, "--reason", "InvalidMessage", answer="n\n")
    assert code == 1
    assert "to discard m-bad:failed (InvalidMessage, job x)" in out
    assert "nothing was discarded" in out
    assert dead_letters.ids() == EVERYTHING
    code, out = discard(dead_letters, "--reason", "InvalidMessage")
    assert (code, "nothing was discarded" in out) == (1, True)  # no answer at all: no
    code, out = discard(dead_letters, "--reason", "InvalidMessage", answer="y\n")
    assert code == 0, out
    assert "discarded 1 from queue" in out
    assert dead_letters.ids() == EVERYTHING - {"m-bad:failed"}
    assert dead_letters.reader.take_all(dead_letters.deletion_queue, 0) == []


def test_a_reason_this_tool_does_not_know_is_listed_and_replayed_with_force(
    dead_letters: DeadLetters,
) -> None:
    """A record with a newer reason (DeletionStuck) is shown as it is and can be replayed with --force."""
    stuck = {
        "reason": "DeletionStuck",
        "description": "The job stayed in deleting; replay with force.",
        "jobId": "stuck-2",
        "failedAt": "2026-11-28T10:00:00+00:00",
        "originalMessage": {"messageId": "m-s", "body": '{"jobId": "stuck-2"}'},
    }
    message = OutgoingMessage(json.dumps(stuck).encode(), message_id="m-s:failed")
    _send(dead_letters.reader, [(dead_letters.queue, message)])
    assert wait_for(lambda: "m-s:failed" in dead_letters.ids(), "the record", 10)
    listing = run("dead-letters", "list", *dead_letters.args("--reason", "DeletionStuck"))
    assert listing.exit_code == 0
    assert "DeletionStuck" in listing.stdout
    assert "stuck-2" in listing.stdout
    code, out, _ = replay(dead_letters, "--reason", "DeletionStuck", "--force")
    assert code == 0, out
    [copy] = dead_letters.reader.take_all(dead_letters.deletion_queue, 1)
    assert json.loads(body(copy)) == {"jobId": "stuck-2", "force": True}
