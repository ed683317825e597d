"""The secrets canary (tests/canary.py, emulators/canary.py): it is in every token, it fails a session
that lets it out, and each watcher reports what it sees; a redirect never carries the token away.

Processes that a test here feeds a canary to on purpose get a canary and a report file of their own
(`private`), so that their sightings prove the watch works without failing this session.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from azure.identity.aio import ManagedIdentityCredential
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from delete_job.processor import Processor
from delete_job.records import Received
from emulators import RunningProcess, start
from emulators.canary import CANARY_ENV, REPORT_ENV, describe_record
from emulators.control import BatchEmulator
from emulators.identity import make_token
from emulators.servicebus import connection_string
from emulators.telemetry import capture
from shared.identity import BATCH_SCOPE
from shared.settings import load_settings
from tests.conftest import BatchHandle, IdentityHandle, ServiceBusHandle
from tests.polling import wait_for

PROJECT = Path(__file__).resolve().parent.parent
HOST_APP = PROJECT / "tests" / "emulators" / "host_app"
API_VERSION = "2025-06-01"
BATCH_RESOURCE = "https://batch.core.windows.net/"


@dataclass(frozen=True)
class PrivateCanary:
    """A canary and a report file for the processes one test starts."""

    value: str
    report: Path

    def env(self) -> dict[str, str]:
        return {CANARY_ENV: self.value, REPORT_ENV: str(self.report)}

    def token(self) -> str:
        """A Batch token carrying this canary (as the identity endpoint would issue it)."""
        issued = int(time.time())
        header_and_payload = make_token(BATCH_RESOURCE, str(uuid.uuid4()), 3600, issued).rsplit(".", 1)[0]
        return f"{header_and_payload}.{self.value}"

    def sightings(self, who: str = "") -> list[str]:
        """Reported lines (without the process id) that mention ``who``."""
        text = self.report.read_text(encoding="utf-8") if self.report.exists() else ""
        assert self.value not in text, "a report line must never repeat the canary"
        return [line.split(": ", 1)[1] for line in text.splitlines() if who in line]


@pytest.fixture
def private(tmp_path: Path) -> PrivateCanary:
    return PrivateCanary(f"CANARY-private-{secrets.token_hex(8)}", tmp_path / "canary-report.txt")


# --- the session's own canary --------------------------------------------------------------------


async def test_every_token_carries_the_canary_and_batch_accepts_it(
    identity_env: IdentityHandle, batch_emulator: BatchHandle, token_canary: str
) -> None:
    """The real credential's token ends in the canary; Batch accepts it; the request log never shows it."""
    async with ManagedIdentityCredential() as credential:
        token = (await credential.get_token(BATCH_SCOPE)).token
    assert token.split(".")[2] == token_canary
    batch_emulator.control.add_job("kept-secret")
    url = f"{batch_emulator.url}/jobs/kept-secret?api-version={API_VERSION}"
    async with httpx.AsyncClient() as http:
        assert (await http.delete(url, headers={"Authorization": f"Bearer {token}"})).status_code == 202
        log = await http.get(f"{batch_emulator.url}/_emulator/requests")
    assert log.json()[0]["headers"]["authorization"] == "Bearer REDACTED"
    assert log.json()[0]["tokenClaims"]["aud"] == BATCH_RESOURCE
    assert token_canary not in log.text


def test_record_parts_are_all_looked_at(token_canary: str) -> None:
    """Message arguments, custom dimensions, a chained exception and a stack all count; a clean record not."""

    def record(**kwargs: object) -> logging.LogRecord:
        return logging.makeLogRecord({"name": "t", "msg": "sending %s", "args": ("x",), **kwargs})

    try:
        try:
            raise ValueError(f"token {token_canary}")
        except ValueError as cause:
            raise RuntimeError("the request failed") from cause
    except RuntimeError as error:
        chained = (type(error), error, error.__traceback__)
    assert describe_record(record(), token_canary) is None
    assert describe_record(record(args=(f"Bearer {token_canary}",)), token_canary) == "message"
    assert describe_record(record(headers={"a": token_canary}), token_canary) == "field headers"
    assert describe_record(record(exc_info=chained), token_canary) == "exception"
    assert describe_record(record(stack_info=f"at {token_canary}"), token_canary) == "field stack_info"


_LEAKY_TESTS = """
import logging
import os
from pathlib import Path

import pytest

from emulators.canary import report

TOKEN = "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0." + os.environ["EMULATOR_CANARY"]
Path(os.environ["CANARY_SIDE_CHANNEL"]).write_text(os.environ["EMULATOR_CANARY"])


def test_a_debug_record_holds_it():
    logging.getLogger("azure.core.pipeline").debug("Authorization: %s", TOKEN)


def test_a_custom_dimension_holds_it():
    logging.getLogger("delete_job").info("deleted", extra={"authorization": TOKEN})


def test_a_logged_exception_holds_it():
    try:
        raise ConnectionError(f"refused {TOKEN}")
    except ConnectionError:
        logging.getLogger("shared").exception("no answer")


def test_it_is_printed():
    print(TOKEN)


@pytest.mark.xfail(strict=True)
def test_a_failure_text_holds_it():
    raise AssertionError(TOKEN)


def test_an_emulator_reported_it():
    report("Batch emulator: data-plane DELETE /jobs/x: canary in its header 'x-trace'")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_session_that_lets_the_canary_out_fails(tmp_path: Path, workers: list[str]) -> None:
    """Tests that pass, but log, print or raise a token (or an emulator saw one): the session fails,
    says where each time, and never prints the canary itself; with pytest-xdist too (the workers' own
    log records reach the controller through the report file)."""
    (tmp_path / "test_leaky.py").write_text(_LEAKY_TESTS)
    side_channel = tmp_path / "canary.txt"
    env = {k: v for k, v in os.environ.items() if k not in (CANARY_ENV, REPORT_ENV, "PYTEST_ADDOPTS")}
    env.update(PYTHONPATH=str(PROJECT), CANARY_SIDE_CHANNEL=str(side_channel))
    plugins = ("-p", "tests.canary", "-p", "no:cacheprovider", "-p", "no:asyncio")
    options = (*plugins, *workers, "-q", "--rootdir", str(tmp_path))
    inner = subprocess.run(  # noqa: S603 - our own interpreter, our own plugin
        [sys.executable, "-m", "pytest", *options, "test_leaky.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = inner.stdout + inner.stderr
    assert inner.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "5 passed, 1 xfailed, 1 error" in output, output
    assert "7 sighting(s) of the secrets canary" in output, output
    # With workers, the log records were seen in the workers and reached the controller by the report.
    assert ("xdist worker pid" in output) == bool(workers), output
    for expected in (
        "log record azure.core.pipeline DEBUG",  # DEBUG too: the watch lowers every logger to DEBUG
        "log record delete_job INFO (",
        "holds the canary in its field authorization (during test_leaky.py::test_a_custom_dimension",
        "log record shared ERROR (",
        "holds the canary in its exception (during test_leaky.py::test_a_logged_exception_holds_it)",
        "'Captured log call' of test_leaky.py::test_a_logged_exception_holds_it",
        "'Captured stdout call' of test_leaky.py::test_it_is_printed",
        "the call report of test_leaky.py::test_a_failure_text_holds_it",
        # Noticed when the session next looks at the report file: with workers, maybe after another test.
        "Batch emulator: data-plane DELETE /jobs/x: canary in its header 'x-trace' (noticed after "
        + ("" if workers else "test_leaky.py::test_an_emulator_reported_it)"),
    ):
        assert expected in output, (expected, output)
    assert side_channel.read_text() not in output


# --- each emulator's watch, with a canary of the test's own ---------------------------------------


def test_batch_emulator_reports_the_canary_anywhere_but_authorization(private: PrivateCanary) -> None:
    """In Authorization the token is where it belongs; in the query, another header or the body it is
    reported, with where (never the canary itself)."""
    jobs = f"/jobs/job-1?api-version={API_VERSION}"
    with (
        start("emulators.batch", env=private.env()) as batch,
        httpx.Client(base_url=batch.url, headers={"Authorization": f"Bearer {private.token()}"}) as http,
    ):
        assert http.delete(jobs).status_code == 404
        assert private.sightings() == []
        http.delete(f"{jobs}&trace={private.value}")
        http.delete(jobs, headers={"x-trace": private.value})
        http.post(f"/jobs?api-version={API_VERSION}", json={"id": "j", "displayName": private.value})
        assert private.sightings() == [
            "Batch emulator: data-plane DELETE /jobs/job-1: canary in its request target (path or query)",
            "Batch emulator: data-plane DELETE /jobs/job-1: canary in its header 'x-trace'",
            "Batch emulator: data-plane POST /jobs: canary in its body",
        ]
        http.get("/_emulator/requests")  # the log shows the query above: its answer holds the canary
        assert private.sightings()[-1] == "Batch emulator: the answer to control GET /_emulator/requests"


def test_identity_endpoint_puts_the_canary_in_tokens_and_reports_receiving_it(
    private: PrivateCanary,
) -> None:
    """Issued tokens end in the canary; a request that carries it (none ever should) is reported."""
    query = {"api-version": "2019-08-01", "resource": BATCH_RESOURCE}
    headers = {"X-IDENTITY-HEADER": "local-secret"}
    with start("emulators.identity", env={**private.env(), "IDENTITY_HEADER": "local-secret"}) as identity:
        token = httpx.get(identity.url, params=query, headers=headers).json()["access_token"]
        assert token.split(".")[2] == private.value
        assert private.sightings() == []
        httpx.get(identity.url, params=query, headers={**headers, "x-ms-client-request-id": private.value})
    assert private.sightings() == [
        "identity endpoint: GET /msi/token: canary in its header 'x-ms-client-request-id'"
    ]


def test_host_reports_a_log_record_holding_the_canary(private: PrivateCanary, tmp_path: Path) -> None:
    """The local host logs a failed invocation with its message id: holding the canary, it is reported."""
    queues = ("canary-async", "canary-sync")
    with start("emulators.servicebus", "--queue", queues[0], "--queue", queues[1], env=private.env()) as bus:
        connection = connection_string(bus.url)
        settings = tmp_path / "local.settings.json"
        settings.write_text('{"IsEncrypted": false, "Values": {}}')
        app_env = {
            "ServiceBusConnection": connection,
            "ASYNC_QUEUE": queues[0],
            "SYNC_QUEUE": queues[1],
            "HOST_TEST_EVENTS": str(tmp_path / "events.jsonl"),
        }
        with (
            start(
                "emulators.host",
                *("--app-dir", str(HOST_APP), "--settings", str(settings)),
                env={**private.env(), **app_env},
                ready_timeout=60,
            ),
            ServiceBusClient.from_connection_string(connection) as client,
            client.get_queue_sender(queues[0]) as sender,
        ):
            body = json.dumps({"action": "raise"})
            sender.send_messages(ServiceBusMessage(body, message_id=f"job-{private.value}"))
            seen = wait_for(lambda: private.sightings("Functions host"), "the host's report")
    assert seen[0].startswith("Functions host: log record emulators.host WARNING (")
    assert seen[0].endswith(") holds the canary in its message")


def test_telemetry_holding_the_canary_is_reported(
    private: PrivateCanary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span attribute, a span name, a log record's body and a metric label holding the canary are each
    reported (emulators/telemetry.py), without repeating it."""
    for name, value in private.env().items():
        monkeypatch.setenv(name, value)
    captured = capture("telemetry under test")
    tracer_provider, logger_provider, meter_provider = captured.providers
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("fine", attributes={"header": private.token()}):
        pass
    with tracer.start_as_current_span(f"Bearer {private.token()}"):
        pass
    logger_provider.get_logger("test").emit(body=f"sent {private.token()}")
    meter_provider.get_meter("test").create_counter("c").add(1, {"account": private.value})
    captured.metrics()
    seen = private.sightings("telemetry under test")
    assert seen == [
        "telemetry under test: an exported span holds the canary",
        "telemetry under test: an exported span holds the canary",
        "telemetry under test: an exported log record holds the canary",
        "telemetry under test: an exported metric holds the canary",
    ]


# --- redirects ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[RunningProcess]:
    """Another listening host that records every request it gets: a redirect's target."""
    with start("emulators.batch") as process:
        yield process


@pytest.fixture
async def processor(
    batch_emulator: BatchHandle, identity_env: IdentityHandle, servicebus: ServiceBusHandle
) -> AsyncIterator[Processor]:
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_emulator.url,
            "DELETION_QUEUE": servicebus.queues.queue,
            "DEAD_LETTER_QUEUE": servicebus.queues.dedup,
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
            "ServiceBusConnection": servicebus.connection_string,
        }
    )
    created = Processor.create(settings)
    yield created
    await created.close()


async def test_a_redirect_to_another_host_never_reaches_it(
    processor: Processor, batch_emulator: BatchHandle, elsewhere: RunningProcess
) -> None:
    """301, 302, 307 and 308 to another host: BatchRejected after one request; the other host gets none."""
    with BatchEmulator(elsewhere.url) as other:
        other.reset()
        target = f"{elsewhere.url}/jobs/moved?api-version={API_VERSION}"
        for status in (301, 302, 307, 308):
            batch_emulator.control.add_fault(status=status, redirect=target)
            message = Received(
                message_id=f"redirect-{status}",
                body=b'{"jobId": "moved"}',
                content_type="application/json",
                enqueued_time_utc=datetime.now(UTC),
                delivery_count=1,
            )
            result = await processor.process(message)
            assert (result.outcome, result.http_status, result.attempts) == ("BatchRejected", status, 1)
        assert len(batch_emulator.control.requests()) == 4
        assert other.requests() == []
        assert other.stats()["requests"] == 0
