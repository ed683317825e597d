"""The Batch client's Get Job (contract section 6) against the Batch emulator, over real sockets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from azure.identity.aio import ManagedIdentityCredential

from shared.batch_client import JOB_SELECT, BatchClient, parse_job
from shared.batch_errors import InvalidRequestError
from shared.identity import BatchToken
from tests.conftest import BatchHandle

pytestmark = pytest.mark.usefixtures("identity_env")

GUID = "6f1c3f0e-7d0a-4a8e-9b3e-2f6d1c9a0b11"


@pytest.fixture
async def client(batch_emulator: BatchHandle) -> AsyncIterator[BatchClient]:
    async with ManagedIdentityCredential() as credential:
        batch = BatchClient(batch_emulator.url, BatchToken(credential), read_timeout_margin=0.5)
        yield batch
        await batch.aclose()


async def test_get_job_sends_the_documented_request(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """GET /jobs/{id} with api-version and $select; client-request-id echoed, ocp-date, no preconditions."""
    batch_emulator.control.add_job("nightly-42")
    answer = await client.get_job("nightly-42", client_request_id=GUID)
    assert answer.status == 200
    (logged,) = batch_emulator.control.requests()
    assert logged["method"] == "GET"
    assert logged["path"] == "/jobs/nightly-42"
    assert logged["query"] == {"api-version": "2025-06-01", "$select": JOB_SELECT}
    headers = logged["headers"]
    assert headers["client-request-id"] == GUID
    assert headers["return-client-request-id"] == "true"
    assert headers["ocp-date"].endswith(" GMT")
    assert headers["authorization"] == "Bearer REDACTED"
    assert not {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since"} & set(headers)
    assert answer.client_request_id == answer.echoed_client_request_id == GUID


async def test_get_job_reads_the_job_fields(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """A 200 carries the job's id, state, creationTime and stateTransitionTime as Batch wrote them."""
    seeded = batch_emulator.control.add_job("stuck-1", state="deleting")
    answer = await client.get_job("stuck-1")
    assert answer.ok
    assert answer.error is None
    assert answer.job is not None
    assert answer.job.id == "stuck-1"
    assert answer.job.state == "deleting"
    assert answer.job.creation_time == datetime.fromisoformat(seeded["creationTime"])
    assert answer.job.state_transition_time == datetime.fromisoformat(seeded["stateTransitionTime"])
    assert uuid.UUID(answer.client_request_id)  # a new GUID when none is given


async def test_get_job_of_a_missing_job_is_batchs_404(client: BatchClient) -> None:
    """An unknown job: status 404, Batch's error JobNotFound, no job."""
    answer = await client.get_job("gone-1")
    assert (answer.status, answer.error_code, answer.job) == (404, "JobNotFound", None)
    assert answer.request_id


async def test_get_job_refuses_a_bad_job_id(client: BatchClient, batch_emulator: BatchHandle) -> None:
    """A job id outside the pattern is refused before anything is sent."""
    with pytest.raises(InvalidRequestError):
        await client.get_job("a/b")
    assert batch_emulator.control.requests() == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"not json", None),
        (b"[1]", None),
        (b'{"id": 5, "state": null}', (None, None, None, None)),
        (
            b'{"id":"j","state":"active","creationTime":"2026-11-28T10:00:00.1234567Z",'
            b'"stateTransitionTime":"yesterday"}',
            ("j", "active", datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC), None),
        ),
    ],
)
def test_parse_job_tolerates_odd_bodies(body: bytes, expected: tuple[object, ...] | None) -> None:
    """A body that is not a job gives None; a field of the wrong type or an unreadable date is None."""
    job = parse_job(body)
    if expected is None:
        assert job is None
    else:
        assert job is not None
        assert (job.id, job.state, job.creation_time, job.state_transition_time) == expected
