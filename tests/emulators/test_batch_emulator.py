"""The Batch emulator's DELETE /jobs/{id}: auth, api-version, validation and delete semantics."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import API_VERSION, BatchClient, assert_batch_error, bearer

GUID = "9C4D50EE-2D56-4CD3-8152-34347DC9F2B0"


# --- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "The request has no Authorization header."),
        ("Basic dXNlcjpwYXNz", "The Authorization header is not of the form 'Bearer <token>'."),
        ("Bearer not-a-jwt", "The access token is not a well-formed JWT."),
        ("Bearer a.!!!.c", "The access token is not a well-formed JWT."),
    ],
)
def test_malformed_authorization_is_401(
    batch: BatchClient, batch_emulator: BatchHandle, authorization: str | None, detail: str
) -> None:
    """A missing, non-Bearer or non-JWT Authorization header is refused with 401 AuthenticationFailed."""
    batch_emulator.control.add_job("job-1")
    headers = {"Authorization": authorization} if authorization else {}
    if authorization is None:
        del batch.http.headers["Authorization"]
    response = batch.delete("job-1", headers=headers)
    assert_batch_error(response, 401, "AuthenticationFailed", {"AuthenticationErrorDetail": detail})
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert batch_emulator.control.get_job("job-1") is not None


def test_wrong_audience_is_401(batch: BatchClient) -> None:
    """A token for another resource is refused, naming the audience it had."""
    response = batch.delete("job-1", headers={"Authorization": bearer("https://management.azure.com/")})
    body = assert_batch_error(response, 401, "AuthenticationFailed")
    assert "https://management.azure.com/" in body["values"][0]["value"]


def test_expired_token_is_401(batch: BatchClient) -> None:
    """An expired token is refused with a lifetime reason."""
    expired = bearer(lifetime=60, now=int(time.time()) - 3600)
    response = batch.delete("job-1", headers={"Authorization": expired})
    body = assert_batch_error(response, 401, "AuthenticationFailed")
    assert "expired" in body["values"][0]["value"]


def test_audience_without_trailing_slash_is_accepted(batch: BatchClient) -> None:
    """Both spellings of the Batch audience pass authentication."""
    response = batch.delete("job-1", headers={"Authorization": bearer("https://batch.core.windows.net")})
    assert_batch_error(response, 404, "JobNotFound")


def test_token_is_never_echoed(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """Neither an error body nor the request log nor stderr contains the token."""
    token = bearer("https://vault.azure.net").removeprefix("Bearer ")
    response = batch.delete("job-1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert token not in response.text
    (entry,) = batch_emulator.control.requests()
    assert entry["headers"]["authorization"] == "Bearer REDACTED"
    assert token not in batch_emulator.process.stderr_tail()


def test_auth_is_checked_before_api_version(batch: BatchClient) -> None:
    """Without a token and without api-version the answer is 401, not 400."""
    del batch.http.headers["Authorization"]
    assert batch.delete("job-1", api_version=None).status_code == 401


# --- api-version ----------------------------------------------------------------------------


def test_missing_api_version_is_400(batch: BatchClient) -> None:
    """No api-version: 400 MissingRequiredQueryParameter naming it."""
    response = batch.delete("job-1", api_version=None)
    assert_batch_error(response, 400, "MissingRequiredQueryParameter", {"QueryParameterName": "api-version"})


def test_unsupported_api_version_is_400(batch: BatchClient) -> None:
    """An unknown api-version: 400 InvalidQueryParameterValue with name, value and reason."""
    response = batch.delete("job-1", api_version="2019-01-01")
    body = assert_batch_error(response, 400, "InvalidQueryParameterValue")
    values = {v["key"]: v["value"] for v in body["values"]}
    assert values["QueryParameterName"] == "api-version"
    assert values["QueryParameterValue"] == "2019-01-01"
    assert values["Reason"]


@pytest.mark.parametrize(
    "version",
    ["2025-06-01", "2024-07-01.20.0", "2024-02-01.19.0", "2023-11-01.18.0", "2023-05-01.17.0"],
)
def test_supported_api_versions(batch: BatchClient, batch_emulator: BatchHandle, version: str) -> None:
    """Every supported api-version reaches the operation."""
    batch_emulator.control.add_job("job-1")
    assert batch.delete("job-1", api_version=version).status_code == 202


# --- query and header validation ------------------------------------------------------------


def test_unknown_query_parameter_is_400(batch: BatchClient) -> None:
    """A query parameter DELETE does not take (or a misspelt one) is refused, by name."""
    response = batch.delete("job-1", params={"timeout": "30"})
    assert_batch_error(
        response,
        400,
        "UnsupportedQueryParameter",
        {"QueryParameterName": "timeout", "QueryParameterValue": "30"},
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"timeOut": "abc"}, "InvalidQueryParameterValue"),
        ({"timeOut": "0"}, "OutOfRangeQueryParameterValue"),
        ({"force": "yes"}, "InvalidQueryParameterValue"),
    ],
)
def test_bad_query_values_are_400(batch: BatchClient, params: dict[str, str], code: str) -> None:
    """timeOut must be a positive integer and force a boolean."""
    body = assert_batch_error(batch.delete("job-1", params=params), 400, code)
    (name,) = params
    assert {"key": "QueryParameterName", "value": name} in body["values"]


def test_valid_query_values_are_accepted(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """timeOut above 30 and force in any letter case are accepted."""
    batch_emulator.control.add_job("job-1")
    assert batch.delete("job-1", params={"timeOut": "45", "force": "TRUE"}).status_code == 202


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("client-request-id", "{9C4D50EE-2D56-4CD3-8152-34347DC9F2B0}"),
        ("client-request-id", "not-a-guid"),
        ("return-client-request-id", "yes"),
        ("ocp-date", "2026-11-28T10:00:00Z"),
        ("If-Modified-Since", "28 Nov 2026 10:00:00"),
        ("If-Unmodified-Since", "Saturday, 28-Nov-26 10:00:00 GMT"),
    ],
)
def test_bad_headers_are_400(batch: BatchClient, name: str, value: str) -> None:
    """Malformed GUIDs, booleans and dates (only RFC 7231 IMF-fixdate) are InvalidHeaderValue."""
    response = batch.delete("no-such-job", headers={name: value})
    assert_batch_error(
        response, 400, "InvalidHeaderValue", {"HeaderName": name.lower(), "HeaderValue": value}
    )


def test_well_formed_headers_are_accepted(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """A client-request-id GUID and an RFC 7231 ocp-date pass validation."""
    batch_emulator.control.add_job("job-1")
    headers = {"client-request-id": GUID.lower(), "ocp-date": "Sat, 28 Nov 2026 10:00:00 GMT"}
    assert batch.delete("job-1", headers=headers).status_code == 202


# --- delete semantics -----------------------------------------------------------------------


def test_delete_answers_202_like_batch(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """202 with an empty body, request-id, DataServiceVersion and Date; no ETag or Last-Modified."""
    batch_emulator.control.add_job("job-1")
    response = batch.delete("job-1", headers={"client-request-id": GUID})
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    uuid.UUID(response.headers["request-id"])
    assert response.headers["DataServiceVersion"] == "3.0"
    assert response.headers["Date"].endswith(" GMT")
    for absent in ("ETag", "Last-Modified", "client-request-id"):
        assert absent not in response.headers


def test_client_request_id_is_echoed_only_on_request(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """return-client-request-id: true echoes client-request-id, on success and on errors."""
    batch_emulator.control.add_job("job-1")
    echo = {"client-request-id": GUID, "return-client-request-id": "true"}
    assert batch.delete("job-1", headers=echo).headers["client-request-id"] == GUID
    assert batch.delete("job-1", headers=echo).headers["client-request-id"] == GUID  # the 404
    no_echo = {"client-request-id": GUID, "return-client-request-id": "false"}
    assert "client-request-id" not in batch.delete("job-1", headers=no_echo).headers


def test_unknown_job_is_404(batch: BatchClient) -> None:
    """Deleting a job that does not exist: 404 JobNotFound in Batch's error shape."""
    assert_batch_error(batch.delete("no-such-job"), 404, "JobNotFound", values={})


def test_delete_removes_the_job_at_once_by_default(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """With deleteDelayMs 0 the job is gone right after the 202: GET and DELETE answer 404."""
    batch_emulator.control.add_job("job-1")
    assert batch.delete("job-1").status_code == 202
    assert_batch_error(batch.get("job-1"), 404, "JobNotFound")
    assert_batch_error(batch.delete("job-1"), 404, "JobNotFound")


def test_job_ids_are_case_insensitive_and_case_preserving(
    batch: BatchClient, batch_emulator: BatchHandle
) -> None:
    """A job created as Nightly-42 is found as NIGHTLY-42 and still reports its own spelling."""
    batch_emulator.control.add_job("Nightly-42")
    assert batch.get("nightly-42").json()["id"] == "Nightly-42"
    assert batch.delete("NIGHTLY-42").status_code == 202
    assert batch_emulator.control.get_job("Nightly-42") is None


def test_encoded_slash_stays_inside_the_job_id(batch: BatchClient) -> None:
    """/jobs/..%2Fpools%2Fx addresses a job with that odd id (not found), never another resource."""
    response = batch.http.request("DELETE", "/jobs/..%2Fpools%2Fx?api-version=" + API_VERSION)
    assert_batch_error(response, 404, "JobNotFound")


def test_deleting_job_is_409_then_gone(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """With deleteDelayMs the job shows 'deleting', a second DELETE is 409, then it is gone."""
    batch_emulator.control.configure(deleteDelayMs=300)
    before = batch_emulator.control.add_job("job-1")
    assert batch.delete("job-1").status_code == 202
    job = batch.get("job-1").json()
    assert (job["state"], job["previousState"]) == ("deleting", "active")
    assert job["eTag"] != before["eTag"]
    assert_batch_error(batch.delete("job-1"), 409, "JobBeingDeleted")
    batch.wait_for_status("job-1", 404)
    assert_batch_error(batch.delete("job-1"), 404, "JobNotFound")


def test_deleting_beats_a_failing_precondition(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """A redelivered conditional delete of a deleting job reads 409 JobBeingDeleted, not 412."""
    batch_emulator.control.add_job("job-1", state="deleting")
    response = batch.delete("job-1", headers={"If-Match": "0x8D000000000000"})
    assert_batch_error(response, 409, "JobBeingDeleted")


def test_completed_job_deletes(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """Deleting a completed job is routine: 202."""
    batch_emulator.control.add_job("job-1", state="completed")
    assert batch.delete("job-1").status_code == 202


def test_terminating_job_deletes_unless_configured(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """A terminating job deletes (202) unless rejectDeleteWhileTerminating makes it 409."""
    batch_emulator.control.add_job("job-1", state="terminating")
    batch_emulator.control.add_job("job-2", state="terminating")
    assert batch.delete("job-1").status_code == 202
    batch_emulator.control.configure(rejectDeleteWhileTerminating=True)
    assert_batch_error(batch.delete("job-2"), 409, "JobBeingTerminated")


def test_auto_create_accepts_unknown_jobs(batch: BatchClient, batch_emulator: BatchHandle) -> None:
    """autoCreate answers 202 for any valid unknown id and stores nothing; off, it is 404."""
    assert batch.delete("bench-1").status_code == 404
    batch_emulator.control.configure(autoCreate=True)
    assert batch.delete("bench-1").status_code == 202
    assert batch.delete("bench-1").status_code == 202
    assert batch_emulator.control.jobs() == []


async def test_delete_over_aiohttp(batch_emulator: BatchHandle) -> None:
    """An aiohttp client on one keep-alive connection sees 202 then 404."""
    batch_emulator.control.add_job("job-1")
    url = f"{batch_emulator.url}/jobs/job-1"
    headers = {"Authorization": bearer()}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.delete(url, params={"api-version": API_VERSION}) as response:
            assert response.status == 202
            assert await response.read() == b""
        async with session.delete(url, params={"api-version": API_VERSION}) as response:
            assert response.status == 404
            assert (await response.json(content_type=None))["code"] == "JobNotFound"
