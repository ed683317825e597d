"""What verification reads from the Batch emulator: Get Job with $select, jobs that stay in `deleting`
(per job, for a while or for ever), and a fresh creationTime when a deleted job's id is used again."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import BatchClient, assert_batch_error, bearer, wait_until

SELECT = "id,state,creationTime,stateTransitionTime"


def test_get_honours_select(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """$select returns only the named properties (plus odata.metadata), values as without it."""
    batch_emulator.control.add_job("job-1", poolInfo={"poolId": "p"})
    full = batch.get("job-1").json()
    selected = batch.get("job-1", params={"$select": SELECT})
    assert selected.status_code == 200
    body = selected.json()
    assert set(body) == {"id", "state", "creationTime", "stateTransitionTime", "odata.metadata"}
    assert {key: body[key] for key in SELECT.split(",")} == {key: full[key] for key in SELECT.split(",")}


def test_get_refuses_an_empty_select_name(batch: BatchClient) -> None:
    """A $select with an empty property name is a 400 naming the parameter."""
    response = batch.get("job-1", params={"$select": "id,,state"})
    assert_batch_error(response, 400, "InvalidQueryParameterValue")


def test_get_has_the_same_auth_and_not_found_rules_as_delete(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """Without a valid token a GET is 401 like a DELETE; an unknown job is 404 JobNotFound."""
    no_token = batch.get("job-1", params={"$select": SELECT}, headers={"authorization": ""})
    assert no_token.status_code == 401
    wrong_audience = batch.get("job-1", headers={"authorization": bearer("https://other/")})
    assert wrong_audience.status_code == 401
    assert_batch_error(batch.get("nope", params={"$select": SELECT}), 404, "JobNotFound")


def test_a_stuck_job_stays_deleting(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """deleteStuck: the DELETE is accepted and the job stays `deleting`; a second DELETE is 409."""
    batch_emulator.control.add_job("stuck-1", deleteStuck=True)
    assert batch.delete("stuck-1").status_code == 202
    body = batch.get("stuck-1", params={"$select": SELECT}).json()
    assert body["state"] == "deleting"
    assert_batch_error(batch.delete("stuck-1"), 409, "JobBeingDeleted")
    assert batch.get("stuck-1").json()["state"] == "deleting"


def test_a_job_deletes_after_its_own_delay(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """deleteDelayMs per job overrides the config: `deleting` for that long, then gone (404)."""
    batch_emulator.control.add_job("slow-1", deleteDelayMs=300)
    batch_emulator.control.add_job("fast-1")
    assert batch.delete("slow-1").status_code == 202
    assert batch.delete("fast-1").status_code == 202
    assert batch.get("fast-1").status_code == 404
    assert batch.get("slow-1").json()["state"] == "deleting"
    wait_until(lambda: batch.get("slow-1").status_code == 404)


def test_recreating_a_deleted_job_gives_a_new_creation_time(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """A job created again under a deleted job's id has a later creationTime."""
    assert batch.create({"id": "again-1", "poolInfo": {"poolId": "p"}}).status_code == 201
    first = datetime.fromisoformat(batch.get("again-1").json()["creationTime"])
    assert batch.delete("again-1").status_code == 202
    wait_until(lambda: batch.create({"id": "again-1", "poolInfo": {"poolId": "p"}}).status_code == 201)
    second = datetime.fromisoformat(batch.get("again-1").json()["creationTime"])
    assert second > first


def test_seed_rejects_bad_deletion_settings(batch_emulator: BatchHandle) -> None:
    """The control API refuses a negative deleteDelayMs or a non-boolean deleteStuck, naming the key."""
    for spec, key in (({"deleteDelayMs": -1}, "deleteDelayMs"), ({"deleteStuck": "yes"}, "deleteStuck")):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            batch_emulator.control.add_job("bad-1", **spec)
        assert refused.value.response.status_code == 400
        assert key in refused.value.response.json()["error"]


def test_a_job_seeded_mid_deletion_goes_after_its_delay(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """Seeded `deleting` with deleteDelayMs: 409 JobBeingDeleted to a DELETE, then gone (404)."""
    batch_emulator.control.add_job("mid-1", state="deleting", deleteDelayMs=300)
    assert_batch_error(batch.delete("mid-1"), 409, "JobBeingDeleted")
    wait_until(lambda: batch.get("mid-1").status_code == 404)
