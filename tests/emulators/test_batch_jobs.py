"""The other job operations the emulator serves: create, get, update, terminate, unknown routes."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import BatchClient, assert_batch_error, wait_until

BATCH_ETAG = re.compile(r"0x8D[0-9A-F]{13}")
ISO7 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")


def test_create_answers_201_with_etag_and_location(batch: BatchClient) -> None:
    """POST /jobs with only an id: 201, a Batch-style ETag, Last-Modified and Location."""
    response = batch.create({"id": "Job-1", "poolInfo": {"poolId": "pool-1"}})
    assert response.status_code == 201
    assert response.content == b""
    assert BATCH_ETAG.fullmatch(response.headers["ETag"])
    assert response.headers["Last-Modified"].endswith(" GMT")
    assert response.headers["Location"] == f"{batch.url}/jobs/Job-1"
    assert response.headers["DataServiceVersion"] == "3.0"
    assert batch.get("job-1").headers["ETag"] == response.headers["ETag"]


def test_create_duplicate_is_409_in_any_case(batch: BatchClient) -> None:
    """Creating an id that exists in another letter case: 409 JobExists."""
    assert batch.create({"id": "job-1"}).status_code == 201
    assert_batch_error(batch.create({"id": "JOB-1"}), 409, "JobExists")


@pytest.mark.parametrize(
    ("body", "code", "values"),
    [
        (b"{not json", "InvalidRequestBody", None),
        (b"[]", "InvalidRequestBody", None),
        (b'{"poolInfo": {}}', "MissingRequiredProperty", {"PropertyName": "id"}),
        (b'{"id": "bad/id"}', "InvalidPropertyValue", None),
        (b'{"id": "' + b"x" * 65 + b'"}', "InvalidPropertyValue", None),
    ],
)
def test_create_rejects_bad_bodies(
    batch: BatchClient, body: bytes, code: str, values: dict[str, str] | None
) -> None:
    """A body that is not a JSON object, lacks id or has an invalid id: 400."""
    response = batch.request("POST", "/jobs", content=body)
    assert_batch_error(response, 400, code, values)


def test_get_returns_the_job(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """GET /jobs/{id}: the job's JSON with Batch's fields, ETag and Last-Modified headers."""
    batch_emulator.control.add_job("job-1", poolInfo={"poolId": "p"})
    response = batch.get("job-1")
    assert response.status_code == 200
    job = response.json()
    assert job["id"] == "job-1"
    assert job["url"] == f"{batch.url}/jobs/job-1"
    assert job["eTag"] == response.headers["ETag"]
    assert BATCH_ETAG.fullmatch(job["eTag"])
    assert job["state"] == "active"
    assert job["poolInfo"] == {"poolId": "p"}
    for field in ("lastModified", "creationTime", "stateTransitionTime"):
        assert ISO7.fullmatch(job[field])
    assert "previousState" not in job
    assert response.headers["Last-Modified"] == datetime.fromisoformat(job["lastModified"]).strftime(
        "%a, %d %b %Y %H:%M:%S GMT"
    )


def test_get_unknown_job_is_404(batch: BatchClient) -> None:
    """GET of a missing job: 404 JobNotFound."""
    assert_batch_error(batch.get("job-1"), 404, "JobNotFound")


def test_get_if_none_match_is_304(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """A GET whose If-None-Match matches answers 304 Not Modified."""
    etag = batch_emulator.control.add_job("job-1")["eTag"]
    assert batch.get("job-1", headers={"If-None-Match": etag}).status_code == 304


def test_update_replaces_properties(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """PUT /jobs/{id}: 200 with a new ETag; the body's properties replace the old ones."""
    before = batch_emulator.control.add_job("job-1", priority=1, onAllTasksComplete="noaction")
    response = batch.update("job-1", {"priority": 7, "poolInfo": {"poolId": "p2"}})
    assert response.status_code == 200
    assert response.headers["ETag"] != before["eTag"]
    job = batch.get("job-1").json()
    assert (job["priority"], job["poolInfo"], "onAllTasksComplete" in job) == (7, {"poolId": "p2"}, False)


def test_update_refusals(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """PUT: 404 when missing, 409 when deleting or completed, 412 on a stale If-Match."""
    assert_batch_error(batch.update("nope", {}), 404, "JobNotFound")
    batch_emulator.control.add_job("going", state="deleting")
    assert_batch_error(batch.update("going", {}), 409, "JobBeingDeleted")
    batch_emulator.control.add_job("done", state="completed")
    assert_batch_error(batch.update("done", {}), 409, "JobCompleted")
    batch_emulator.control.add_job("job-1")
    stale = {"If-Match": "0x8D000000000000F"}
    assert_batch_error(batch.update("job-1", {}, headers=stale), 412, "ConditionNotMet")


def test_terminate_completes_the_job(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """POST /jobs/{id}/terminate: 202; with terminateDelayMs 0 the job is completed at once."""
    batch_emulator.control.add_job("job-1")
    assert batch.terminate("job-1").status_code == 202
    job = batch.get("job-1").json()
    assert (job["state"], job["previousState"]) == ("completed", "terminating")
    assert_batch_error(batch.terminate("job-1"), 409, "JobCompleted")


def test_terminate_with_delay_passes_through_terminating(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """With terminateDelayMs the job is 'terminating' (a second terminate is 409) then completed."""
    batch_emulator.control.configure(terminateDelayMs=200)
    batch_emulator.control.add_job("job-1")
    assert batch.terminate("job-1").status_code == 202
    assert batch.get("job-1").json()["state"] == "terminating"
    assert_batch_error(batch.terminate("job-1"), 409, "JobBeingTerminated")
    batch_emulator.control.configure(rejectDeleteWhileTerminating=True)
    assert_batch_error(batch.delete("job-1"), 409, "JobBeingTerminated")
    wait_until(lambda: batch.get("job-1").json()["state"] == "completed")
    assert batch.delete("job-1").status_code == 202


def test_terminate_missing_or_deleting_job(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """terminate: 404 for a missing job, 409 JobBeingDeleted for a deleting one."""
    assert_batch_error(batch.terminate("nope"), 404, "JobNotFound")
    batch_emulator.control.add_job("going", state="deleting")
    assert_batch_error(batch.terminate("going"), 409, "JobBeingDeleted")


def test_unknown_route_and_verb(batch: BatchClient) -> None:
    """An unknown path is 400 InvalidUri; a known path with the wrong verb is 405."""
    assert_batch_error(batch.request("GET", "/pools"), 400, "InvalidUri")
    assert_batch_error(batch.request("GET", "/jobs/a/b/c"), 400, "InvalidUri")
    response = batch.request("PATCH", "/jobs/job-1")
    assert_batch_error(response, 405, "UnsupportedHttpVerb")
    assert response.headers["Allow"] == "GET, PUT, DELETE"


def test_get_rejects_delete_only_parameters(batch: BatchClient) -> None:
    """Query parameters are checked per operation: GET does not take force."""
    response = batch.get("job-1", params={"force": "true"})
    assert_batch_error(response, 400, "UnsupportedQueryParameter")
    assert batch.get("job-1", params={"$select": "id"}).status_code == 404
