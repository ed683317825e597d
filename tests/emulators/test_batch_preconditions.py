"""Conditional DELETE (RFC 7232 section 6): If-Match, If-None-Match, If-(Un)Modified-Since."""

from __future__ import annotations

import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import BatchClient, assert_batch_error

ETAG = "0x8DE2F0A1B2C3D4E"
LAST_MODIFIED = "2026-11-28T10:00:00.5Z"  # the Last-Modified header says 10:00:00
BEFORE = "Sat, 28 Nov 2026 09:59:59 GMT"
AT = "Sat, 28 Nov 2026 10:00:00 GMT"
AFTER = "Sat, 28 Nov 2026 10:00:01 GMT"


@pytest.fixture
def job(batch_emulator: BatchHandle) -> str:
    batch_emulator.control.add_job("job-1", eTag=ETAG, lastModified=LAST_MODIFIED)
    return "job-1"


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({"If-Match": ETAG}, True),
        ({"If-Match": f'"{ETAG}"'}, True),
        ({"If-Match": f"0x1, {ETAG}"}, True),
        ({"If-Match": "*"}, True),
        ({"If-Match": "0x8DE2F0A1B2C3D4F"}, False),
        ({"If-None-Match": "0x8DE2F0A1B2C3D4F"}, True),
        ({"If-None-Match": ETAG}, False),
        ({"If-None-Match": "*"}, False),
        ({"If-Unmodified-Since": AT}, True),
        ({"If-Unmodified-Since": AFTER}, True),
        ({"If-Unmodified-Since": BEFORE}, False),
        ({"If-Modified-Since": BEFORE}, True),
        ({"If-Modified-Since": AT}, False),
        ({"If-Modified-Since": AFTER}, False),
    ],
)
def test_single_precondition(
    batch: BatchClient,
    batch_emulator: BatchHandle,
    job: str,
    headers: dict[str, str],
    accepted: bool,
) -> None:
    """Each precondition alone: 202 when it holds, else 412 ConditionNotMet and the job stays."""
    response = batch.delete(job, headers=headers)
    if accepted:
        assert response.status_code == 202
        assert batch_emulator.control.get_job(job) is None
    else:
        assert_batch_error(response, 412, "ConditionNotMet")
        assert batch_emulator.control.get_job(job) is not None


def test_if_match_overrides_if_unmodified_since(batch: BatchClient, job: str) -> None:
    """When If-Match is present, If-Unmodified-Since is ignored (step 2 is skipped)."""
    headers = {"If-Match": ETAG, "If-Unmodified-Since": BEFORE}
    assert batch.delete(job, headers=headers).status_code == 202


def test_if_none_match_overrides_if_modified_since(batch: BatchClient, job: str) -> None:
    """When If-None-Match is present, If-Modified-Since is ignored (step 4 is skipped)."""
    headers = {"If-None-Match": "0x1", "If-Modified-Since": AFTER}
    assert batch.delete(job, headers=headers).status_code == 202


def test_both_steps_must_hold(batch: BatchClient, job: str) -> None:
    """A holding If-Match does not rescue a failing If-None-Match."""
    response = batch.delete(job, headers={"If-Match": ETAG, "If-None-Match": "*"})
    assert_batch_error(response, 412, "ConditionNotMet")


def test_etag_from_get_guards_delete(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """The ETag GET returns matches until the job changes; after an update it no longer does."""
    batch_emulator.control.add_job("job-1")
    etag = batch.get("job-1").headers["ETag"]
    assert batch.update("job-1", {"priority": 5}).status_code == 200
    assert_batch_error(batch.delete("job-1", headers={"If-Match": etag}), 412, "ConditionNotMet")
    fresh = batch.get("job-1").headers["ETag"]
    assert fresh != etag
    assert batch.delete("job-1", headers={"If-Match": fresh}).status_code == 202


def test_last_modified_header_satisfies_if_unmodified_since(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """The job's own Last-Modified (whole seconds) used as If-Unmodified-Since holds."""
    batch_emulator.control.add_job("job-1")
    last_modified = batch.get("job-1").headers["Last-Modified"]
    assert batch.delete("job-1", headers={"If-Unmodified-Since": last_modified}).status_code == 202


def test_preconditions_come_after_the_lookup(batch: BatchClient) -> None:
    """A conditional delete of a missing job is 404, not 412."""
    assert_batch_error(batch.delete("no-job", headers={"If-Match": ETAG}), 404, "JobNotFound")


def test_auto_created_jobs_honour_if_match_star(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """autoCreate's imaginary job exists (If-Match: * holds) but has no known ETag."""
    batch_emulator.control.configure(autoCreate=True)
    assert batch.delete("bench-1", headers={"If-Match": "*"}).status_code == 202
    assert_batch_error(batch.delete("bench-1", headers={"If-Match": ETAG}), 412, "ConditionNotMet")
