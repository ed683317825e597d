"""The chaos run at small size (``bench/chaos.py``; the large one is ``make chaos``): deletion messages
through the real Service Bus emulator, local host and Batch emulator, with faults of every kind injected
at random and the host killed mid-run, then an accounting over every message id."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import ChaosOptions, run

SMALL = ChaosOptions(
    messages=160,
    seed=7,
    host_kills=1,
    connection_drops=1,
    identity_outages=2,
    reject_send_rate=0.08,  # higher than the large run's, so that a few of few sends are refused
    deadline=100,
)


@pytest.mark.timeout(180)
def test_chaos_loses_nothing_duplicates_nothing_and_deletes_no_protected_job(tmp_path: Path) -> None:
    """Every message ends deleted or already gone, or with one record of the right reason (one per request,
    even when a message came back after its retry copy was sent: contract section 5 names records after the
    first message; never the same record twice); every deleted job is confirmed gone and each stuck one
    reported once; the chaos really happened: each kind of fault took
    effect at least once."""
    accounting = run(SMALL, tmp_path)
    report = accounting.render()
    print(report)  # shown by pytest -rA, and on failure
    assert accounting.quiesced, report
    assert accounting.lost == [], report
    assert accounting.duplicate_records == [], report
    assert accounting.split_records == [], report
    assert accounting.protected_deleted == [], report
    assert accounting.wrong_reason == [], report
    assert accounting.invalid_sent_to_batch == [], report
    assert accounting.unknown_records == [], report
    assert accounting.unconfirmed == [], report  # every deleted job confirmed gone (contract section 6)
    assert accounting.pending == 0, report
    # Contract section 7: every failure the hosts logged was exported (a killed host's last lines aside).
    assert accounting.exported.unexported_failures == [], report
    assert accounting.exported.failures[0] > 0, report
    assert accounting.ok, report
    assert (accounting.host_restarts, accounting.connection_drops) == (1, 1)
    took_effect = {name.split(":")[0] for name in accounting.faults}
    assert {"Batch", "identity endpoint", "invocation abandoned"} <= took_effect, report
    batch_faults = {name for name in accounting.faults if name.startswith("Batch: ")}
    assert len(batch_faults) >= 6, report
    refused = accounting.faults["invocation abandoned: failure-record send refused"]
    refused += accounting.faults["invocation abandoned: retry-copy send refused"]
    assert refused > 0, report
    reasons = accounting.records_by_reason
    # Each stuck job (its deletion never finishes) leaves exactly one DeletionStuck record.
    assert reasons["DeletionStuck"] == accounting.by_kind["stuck"] > 0, report
    assert accounting.final_states["stuck: DeletionStuck record"] == accounting.by_kind["stuck"], report
    assert min(reasons["PreconditionFailed"], reasons["InvalidMessage"], reasons["RetriesExhausted"]) > 0, (
        report
    )
