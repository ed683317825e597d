"""The Batch emulator's control API: seeding jobs, config, request log, stats, reset."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import API_VERSION, BatchClient, bearer

GUID = "9c4d50ee-2d56-4cd3-8152-34347dc9f2b0"


def test_request_log_records_what_arrived(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """Each data-plane request is logged in order with raw target, query, headers and status."""
    batch_emulator.control.add_job("job-1")
    batch.delete("Job-1", params={"force": "true"}, headers={"client-request-id": GUID})
    batch.delete("job-1")
    first, second = batch_emulator.control.requests()
    assert second["seq"] == first["seq"] + 1
    assert first["method"] == "DELETE"
    assert first["target"] == f"/jobs/Job-1?api-version={API_VERSION}&force=true"
    assert first["path"] == "/jobs/Job-1"
    assert first["query"] == {"api-version": API_VERSION, "force": "true"}
    assert first["headers"]["client-request-id"] == GUID
    assert first["headers"]["authorization"] == "Bearer REDACTED"
    assert first["tokenClaims"]["aud"] == "https://batch.core.windows.net/"
    assert (first["status"], second["status"]) == (202, 404)
    assert first["faultId"] is None
    assert first["time"].startswith("20")


def test_request_log_keeps_percent_encoding(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """The logged target and path are the raw, still-encoded request target."""
    batch.http.request("DELETE", f"/jobs/a%2Fb?api-version={API_VERSION}")
    (entry,) = batch_emulator.control.requests()
    assert (entry["target"], entry["path"]) == (f"/jobs/a%2Fb?api-version={API_VERSION}", "/jobs/a%2Fb")


def test_request_log_since_and_limit(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """since=SEQ returns only later entries; limit=N only the newest N."""
    for _ in range(5):
        batch.delete("job-1")
    seqs = [entry["seq"] for entry in batch_emulator.control.requests()]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    later = batch_emulator.control.requests(since=seqs[1])
    assert [entry["seq"] for entry in later] == seqs[2:]
    assert [entry["seq"] for entry in batch_emulator.control.requests(limit=2)] == seqs[3:]
    assert batch_emulator.control.requests(since=seqs[-1]) == []


def test_control_calls_are_not_logged(batch_emulator: BatchHandle) -> None:
    """Control API traffic never appears in the request log or the stats."""
    batch_emulator.control.add_job("job-1")
    batch_emulator.control.jobs()
    assert batch_emulator.control.requests() == []
    assert batch_emulator.control.stats() == {"requests": 0, "byStatus": {}}


def test_clear_requests(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """DELETE /_emulator/requests empties the log."""
    batch.delete("job-1")
    batch_emulator.control.clear_requests()
    assert batch_emulator.control.requests() == []


def test_stats_count_by_status(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """stats counts data-plane answers by status."""
    batch_emulator.control.add_job("job-1")
    batch.delete("job-1")
    batch.delete("job-1")
    batch.delete("job-1")
    assert batch_emulator.control.stats() == {"requests": 3, "byStatus": {"202": 1, "404": 2}}


def test_seeded_job_fields(batch_emulator: BatchHandle) -> None:
    """add_job sets state, eTag, lastModified and other properties as given."""
    job = batch_emulator.control.add_job(
        "job-1", state="completed", eTag="0x8D1", lastModified="2026-11-28T10:00:00Z", priority=3
    )
    assert (job["state"], job["eTag"], job["priority"]) == ("completed", "0x8D1", 3)
    assert job["lastModified"] == "2026-11-28T10:00:00.0000000Z"


def test_seeding_replaces_and_lists(batch_emulator: BatchHandle) -> None:
    """add_jobs creates many; adding an existing id (any case) replaces it; jobs() lists all."""
    control = batch_emulator.control
    control.add_jobs(["a", "b", "c"])
    control.add_job("A", state="completed")
    jobs = {job["id"]: job["state"] for job in control.jobs()}
    assert jobs == {"A": "completed", "b": "active", "c": "active"}
    assert control.get_job("B") is not None
    assert control.get_job("nope") is None


@pytest.mark.parametrize(
    "job",
    [
        {"id": "bad id"},
        {"id": "ok", "state": "sleeping"},
        {"id": "ok", "lastModified": "yesterday"},
        {"ids": "a,b"},
        {},
    ],
)
def test_invalid_seeds_are_refused(
    batch_emulator: BatchHandle, http: httpx.Client, job: dict[str, object]
) -> None:
    """The control API refuses jobs it could not represent, with 400 and a reason."""
    response = http.post(f"{batch_emulator.url}/_emulator/jobs", json=job)
    assert response.status_code == 400
    assert response.json()["error"]


def test_config_merges_and_validates(batch_emulator: BatchHandle) -> None:
    """configure merges known keys and refuses unknown keys or wrong types."""
    control = batch_emulator.control
    assert control.configure(deleteDelayMs=50)["deleteDelayMs"] == 50
    assert control.config() == {
        "deleteDelayMs": 50,
        "terminateDelayMs": 0,
        "latencyMs": 0,
        "autoCreate": False,
        "rejectDeleteWhileTerminating": False,
    }
    for bad in ({"deleteDelay": 1}, {"autoCreate": 1}, {"latencyMs": -5}, {"latencyMs": True}):
        with pytest.raises(httpx.HTTPStatusError):
            control.configure(**bad)


def test_reset_restores_everything(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """reset clears jobs, faults, log and stats and restores the start-up config."""
    control = batch_emulator.control
    control.add_job("job-1")
    control.add_fault(status=500, times=None)
    control.configure(autoCreate=True, latencyMs=5)
    batch.delete("job-1")
    control.reset()
    assert (control.jobs(), control.faults(), control.requests()) == ([], [], [])
    assert control.stats()["requests"] == 0
    assert control.config()["autoCreate"] is False
    assert control.config()["latencyMs"] == 0


def test_health_and_unknown_control_route(batch_emulator: BatchHandle, http: httpx.Client) -> None:
    """health answers 200; an unknown control route 404 with a JSON error."""
    assert batch_emulator.control.health()
    response = http.get(f"{batch_emulator.url}/_emulator/nothing")
    assert response.status_code == 404
    assert "error" in response.json()


def test_control_needs_no_token(batch_emulator: BatchHandle, http: httpx.Client) -> None:
    """The control API answers without Authorization; the data plane needs one."""
    assert http.get(f"{batch_emulator.url}/_emulator/jobs").status_code == 200
    assert http.get(f"{batch_emulator.url}/jobs/x?api-version={API_VERSION}").status_code == 401
    headers = {"Authorization": bearer()}
    response = http.get(f"{batch_emulator.url}/jobs/x?api-version={API_VERSION}", headers=headers)
    assert response.status_code == 404
