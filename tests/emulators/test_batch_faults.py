"""Injected faults on the Batch emulator: each kind, matching, counting and apply=true."""

from __future__ import annotations

import time

import aiohttp
import httpx
import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import API_VERSION, BatchClient, assert_batch_error, bearer
from tests.polling import wait_for


@pytest.fixture
def job(batch_emulator: BatchHandle) -> str:
    batch_emulator.control.add_job("job-1")
    return "job-1"


def test_status_fault_answers_batch_json_once(
    batch: BatchClient, batch_emulator: BatchHandle, job: str
) -> None:
    """A 503 fault with retryAfter answers ServerBusy with Retry-After, once; then Batch answers."""
    batch_emulator.control.add_fault(status=503, retryAfter="5")
    response = batch.delete(job)
    assert_batch_error(response, 503, "ServerBusy")
    assert response.headers["Retry-After"] == "5"
    assert batch_emulator.control.get_job(job) is not None  # the operation did not happen
    assert batch.delete(job).status_code == 202


def test_times_n_then_success(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """times=2: two faulted answers, then the real one."""
    batch_emulator.control.add_fault(status=500, times=2)
    assert_batch_error(batch.delete(job), 500, "InternalError")
    assert_batch_error(batch.delete(job), 500, "InternalError")
    assert batch.delete(job).status_code == 202
    assert batch_emulator.control.faults()[0]["remaining"] == 0


def test_unlimited_fault_until_cleared(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """times=None repeats forever (remaining: null) until the faults are cleared."""
    batch_emulator.control.add_fault(status=429, times=None, retryAfter="Sat, 28 Nov 2026 10:00:00 GMT")
    for _ in range(3):
        response = batch.delete(job)
        assert_batch_error(response, 429, "TooManyRequests")
        assert response.headers["Retry-After"] == "Sat, 28 Nov 2026 10:00:00 GMT"
    assert batch_emulator.control.faults()[0]["remaining"] is None
    batch_emulator.control.clear_faults()
    assert batch.delete(job).status_code == 202


def test_a_fault_for_seconds_ends_by_itself(
    batch: BatchClient, batch_emulator: BatchHandle, job: str
) -> None:
    """forSeconds: the fault answers every matching request until its window closes, then Batch answers
    again without anyone clearing it (a 403 until a role assignment applies)."""
    batch_emulator.control.add_fault(status=403, code="AuthorizationFailure", times=None, forSeconds=0.5)
    assert_batch_error(batch.delete(job), 403, "AuthorizationFailure")
    wait_for(lambda: batch.delete(job).status_code == 202, "the window to close", 10)


def test_custom_code_message_values_and_headers(
    batch: BatchClient, batch_emulator: BatchHandle, job: str
) -> None:
    """code, message, values and extra headers shape the faulted answer; code implies its status."""
    batch_emulator.control.add_fault(
        code="JobBeingTerminated",
        message="Custom text.",
        values=[{"key": "Reason", "value": "test"}],
        headers={"x-ms-test": "1"},
    )
    response = batch.delete(job)
    body = assert_batch_error(response, 409, "JobBeingTerminated", {"Reason": "test"})
    assert body["message"]["value"].startswith("Custom text.\nRequestId:")
    assert response.headers["x-ms-test"] == "1"


def test_drop_closes_without_answer(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """drop closes the connection unanswered; the operation did not happen; the log says null."""
    fault_id = batch_emulator.control.add_fault(drop=True)
    with pytest.raises(httpx.RemoteProtocolError):
        batch.delete(job)
    assert batch_emulator.control.get_job(job) is not None
    (entry,) = batch_emulator.control.requests()
    assert (entry["status"], entry["faultId"]) == (None, fault_id)
    assert batch_emulator.control.stats()["byStatus"] == {"dropped": 1}
    assert batch.delete(job).status_code == 202  # a new connection works


def test_drop_with_apply_loses_a_successful_answer(
    batch: BatchClient, batch_emulator: BatchHandle, job: str
) -> None:
    """drop + apply: the job is deleted but the client sees a dropped connection."""
    batch_emulator.control.add_fault(drop=True, apply=True)
    with pytest.raises(httpx.RemoteProtocolError):
        batch.delete(job)
    assert batch_emulator.control.get_job(job) is None
    assert_batch_error(batch.delete(job), 404, "JobNotFound")


def test_status_with_apply(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """apply + 500: the job is deleted, yet the answer is the fault's."""
    batch_emulator.control.add_fault(status=500, apply=True)
    assert_batch_error(batch.delete(job), 500, "InternalError")
    assert batch_emulator.control.get_job(job) is None


def test_redirect(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """redirect answers 307 with Location (and the client, not following, sees exactly that)."""
    batch_emulator.control.add_fault(redirect="http://127.0.0.1:9/jobs/job-1")
    response = batch.delete(job)
    assert response.status_code == 307
    assert response.headers["Location"] == "http://127.0.0.1:9/jobs/job-1"
    assert batch_emulator.control.get_job(job) is not None


RAW = {"raw": '{"error": "other"}', "contentType": "application/json"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("empty", (None, "")),
        ("text", ("text/plain; charset=utf-8", "502 Bad Gateway")),
        ("html", ("text/html", "<h1>502 Bad Gateway</h1>")),
        (RAW, ("application/json", '{"error": "other"}')),
    ],
)
def test_non_batch_bodies(
    batch: BatchClient,
    batch_emulator: BatchHandle,
    body: object,
    expected: tuple[str | None, str],
) -> None:
    """empty, text, html and raw bodies replace Batch's JSON (as a gateway would answer)."""
    content_type, text = expected
    batch_emulator.control.add_job("job-1")
    batch_emulator.control.add_fault(status=502, body=body)
    response = batch.delete("job-1")
    assert response.status_code == 502
    assert response.headers.get("content-type") == content_type
    assert text in response.text
    assert "request-id" not in response.headers


def test_latency_only_fault_delays_then_processes(
    batch: BatchClient, batch_emulator: BatchHandle, job: str
) -> None:
    """A fault with only latencyMs answers normally, but no sooner than the latency."""
    batch_emulator.control.add_fault(latencyMs=200)
    started = time.monotonic()
    assert batch.delete(job).status_code == 202
    assert time.monotonic() - started >= 0.2


def test_latency_exceeding_client_timeout(batch_emulator: BatchHandle, job: str) -> None:
    """A slow answer trips the client's read timeout; the delete still takes effect."""
    batch_emulator.control.add_fault(latencyMs=500)
    slow = BatchClient(batch_emulator.url, timeout=0.1)
    with slow.http:
        with pytest.raises(httpx.ReadTimeout):
            slow.delete(job)
        slow.http.timeout = httpx.Timeout(10.0)
        slow.wait_for_status(job, 404)


def test_configured_latency_applies_to_every_request(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """config latencyMs delays every data-plane answer."""
    batch_emulator.control.configure(latencyMs=150)
    started = time.monotonic()
    assert batch.delete("job-x").status_code == 404
    assert time.monotonic() - started >= 0.15


def test_fault_latency_before_status(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """latencyMs with a status waits, then answers the fault."""
    batch_emulator.control.add_fault(status=503, latencyMs=150)
    started = time.monotonic()
    assert batch.delete(job).status_code == 503
    assert time.monotonic() - started >= 0.15


def test_match_by_method_job_and_path(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """Faults apply only to requests matching method, job id (any case) and path prefix."""
    control = batch_emulator.control
    control.add_jobs(["job-1", "job-2"])
    control.add_fault(status=500, times=None, match={"method": "get"})
    control.add_fault(status=503, times=None, match={"jobId": "JOB-2"})
    control.add_fault(status=504, times=None, match={"path": "/jobs/job-1/terminate"})
    assert batch.get("job-1").status_code == 500
    assert batch.terminate("job-1").status_code == 504
    assert batch.delete("job-2").status_code == 503
    assert batch.delete("job-1").status_code == 202


def test_first_matching_fault_wins(batch: BatchClient, batch_emulator: BatchHandle, job: str) -> None:
    """Faults apply in the order added; a used-up fault lets the next one apply."""
    batch_emulator.control.add_fault(status=500)
    batch_emulator.control.add_fault(status=503)
    assert batch.delete(job).status_code == 500
    assert batch.delete(job).status_code == 503
    assert batch.delete(job).status_code == 202


def test_faults_apply_before_auth(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """A gateway-style fault answers even a request that would fail authentication."""
    batch_emulator.control.add_fault(status=503)
    del batch.http.headers["Authorization"]
    assert batch.delete("job-1").status_code == 503


@pytest.mark.parametrize(
    "fault",
    [
        {"status": "503"},
        {"times": 0},
        {"drop": "yes"},
        {"unknown": 1},
        {"match": {"verb": "GET"}},
        {"body": "xml"},
        {"headers": {"x-bad": "a\r\nb"}},
        {"latencyMs": -1},
        {"forSeconds": "10"},
    ],
)
def test_invalid_faults_are_refused(batch_emulator: BatchHandle, fault: dict[str, object]) -> None:
    """The control API refuses malformed faults with 400 and a reason."""
    with pytest.raises(httpx.HTTPStatusError) as caught:
        batch_emulator.control.add_fault(**fault)
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["error"]


async def test_drop_over_aiohttp(batch_emulator: BatchHandle, job: str) -> None:
    """aiohttp resends an idempotent DELETE once on a dropped connection: two drops surface."""
    url = f"{batch_emulator.url}/jobs/{job}"
    params = {"api-version": API_VERSION}
    async with aiohttp.ClientSession(headers={"Authorization": bearer()}) as session:
        batch_emulator.control.add_fault(drop=True, times=2)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.delete(url, params=params):
                pass
        batch_emulator.control.add_fault(drop=True, times=1)
        async with session.delete(url, params=params) as response:
            assert response.status == 202  # the silent second attempt
    statuses = [entry["status"] for entry in batch_emulator.control.requests()]
    assert statuses == [None, None, None, 202]
