"""Bad input through the Processor against the real emulators (Batch, identity, Service Bus).

A catalogue of named bad bodies, and random ones from the parser's fuzz strategies: every one ends as
outcome InvalidMessage with exactly one InvalidMessage failure record on DEAD_LETTER_QUEUE (a one-line
description naming the problem, the original body kept as contract section 5 says), nothing on the
deletion queue, no request to Batch and no token request. Nothing raises: a raise would abandon the
message and have it redelivered instead of recorded.

One processor, one Service Bus receiver and one queue set serve the whole module (on one event loop):
per message this costs a send and a receive, not a connection.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from _pytest.mark.structures import ParameterSet
from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from delete_job.processor import Processor, Result
from delete_job.records import Received
from delete_job.request import DeletionRequest
from emulators import RunningProcess
from emulators.control import BatchEmulator, IdentityEndpoint
from emulators.servicebus import connection_string
from shared.settings import Settings, load_settings
from tests.conftest import _fresh_servicebus_queues
from tests.delete_job.test_fuzz_request import FUZZ, any_bodies, mutations, outcome

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE_BUS_LIMIT = 256 * 1024  # a Standard-tier message, headers included
MAX_ORIGINAL_BODY = 64 * 1024  # contract section 5
LISTED = "second"


@dataclass
class Delivery:
    """What one message led to, counted while it was processed."""

    result: Result
    records: list[ServiceBusReceivedMessage]  # on DEAD_LETTER_QUEUE
    batch_requests: int  # data-plane requests the Batch emulator saw (its stats and its request log)
    token_requests: int  # requests the identity endpoint saw
    retry_copies: int  # messages put on DELETION_QUEUE


@dataclass
class Rig:
    """The module's processor and queues."""

    settings: Settings
    processor: Processor
    batch: BatchEmulator
    identity: IdentityEndpoint
    records: ServiceBusReceiver  # DEAD_LETTER_QUEUE, receive-and-delete
    deletions: ServiceBusReceiver  # DELETION_QUEUE, only peeked

    async def deliver(
        self, body: bytes, message_id: str, *, processor: Processor | None = None, record: bool = True
    ) -> Delivery:
        """Process one message (with the module's processor unless given); `record`: one is expected."""
        batch_before = self.batch.stats()["requests"]
        last = self.batch.requests(limit=1)
        log_before = last[0]["seq"] if last else 0
        tokens_before = self.identity.stats()["tokenRequests"]
        copies_before = len(await self.deletions.peek_messages(max_message_count=100, sequence_number=1))
        received = Received(
            message_id=message_id,
            body=body,
            content_type="application/json",
            enqueued_time_utc=datetime.now(UTC),
            delivery_count=1,
        )
        result = await (processor or self.processor).process(received)
        # A record is sent before process() returns: it is there now, and nothing comes after it.
        records = (
            list(await self.records.receive_messages(max_message_count=1, max_wait_time=5)) if record else []
        )
        records += await self.records.peek_messages(max_message_count=5)
        batch_requests = self.batch.stats()["requests"] - batch_before
        assert len(self.batch.requests(since=log_before)) == batch_requests  # the log agrees
        return Delivery(
            result,
            records,
            batch_requests,
            self.identity.stats()["tokenRequests"] - tokens_before,
            len(await self.deletions.peek_messages(max_message_count=100, sequence_number=1)) - copies_before,
        )


@pytest.fixture(scope="module")
def identity_variables(identity_control: IdentityEndpoint, identity_secret: str) -> Iterator[None]:
    """IDENTITY_ENDPOINT/IDENTITY_HEADER for the module (the conftest's fixture is per test)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
            patch.delenv(name, raising=False)
        patch.setenv("IDENTITY_ENDPOINT", identity_control.token_url)
        patch.setenv("IDENTITY_HEADER", identity_secret)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(
    identity_variables: None,
    batch_process: RunningProcess,
    batch_control: BatchEmulator,
    identity_control: IdentityEndpoint,
    servicebus_process: RunningProcess,
) -> AsyncIterator[Rig]:
    batch_control.reset()
    identity_control.reset()
    queues = _fresh_servicebus_queues()
    connection = connection_string(servicebus_process.url)
    settings = load_settings(
        {
            "BATCH_ENDPOINT": batch_process.url,
            "BATCH_ACCOUNTS": json.dumps({LISTED: batch_process.url}),
            "DELETION_QUEUE": queues.queue,
            "DEAD_LETTER_QUEUE": queues.forward_target,  # no duplicate detection: a second record shows
            "ServiceBusConnection": connection,
            "QUICK_RETRY_DELAYS": "none",
            "VERIFY_DELETION_AFTER": "0",  # verification is not the point here
        }
    )
    processor = Processor.create(settings)
    try:
        async with (
            ServiceBusClient.from_connection_string(connection) as client,
            client.get_queue_receiver(
                queues.forward_target, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
            ) as records,
            client.get_queue_receiver(queues.queue) as deletions,
        ):
            yield Rig(settings, processor, batch_control, identity_control, records, deletions)
    finally:
        await processor.close()


# --- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A bad body, the words its description must contain, and the jobId/account the record names."""

    body: bytes
    words: tuple[str, ...]
    job_id: str | None = None
    account: str | None = None


def raw(case_id: str, body: bytes, *words: str, job_id: str | None = None) -> ParameterSet:
    return pytest.param(Case(body, words, job_id), id=case_id)


def fields(case_id: str, words: tuple[str, ...], **values: Any) -> ParameterSet:
    """A JSON object: jobId "x" unless given, and `values`."""
    data = {"jobId": "x", **values}
    job_id, account = data["jobId"], data.get("account")
    body = json.dumps(data).encode()
    return pytest.param(Case(body, words, named(job_id, 128), named(account, 64)), id=case_id)


def named(value: Any, cut: int = 128) -> str | None:
    """A message's jobId or account as a record names it: cut, and encodable (a lone surrogate, from
    a JSON escape, becomes '?')."""
    return value[:cut].encode("utf-8", errors="replace").decode() if isinstance(value, str) else None


FIELDS_MSG = ("allowed", "never comes from a message")
BIG = SERVICE_BUS_LIMIT - 1024  # a body that still fits a Service Bus message with its headers
NOISE = random.Random(0).randbytes(BIG)

CATALOGUE: list[ParameterSet] = [
    # Not one UTF-8 JSON object
    raw("not UTF-8", b'{"jobId": "\xff"}', "not UTF-8", "offset 11"),
    raw("latin-1", '{"jobId": "jöb"}'.encode("latin-1"), "not UTF-8"),
    raw("UTF-16", '{"jobId": "x"}'.encode("utf-16"), "not UTF-8"),
    raw("UTF-8-encoded lone surrogate", b'{"jobId": "\xed\xa0\x80"}', "not UTF-8"),
    raw("byte order mark", b'\xef\xbb\xbf{"jobId": "x"}', "byte order mark"),
    raw("empty", b"", "not one valid JSON object"),
    raw("not JSON", b"delete job x please", "not one valid JSON object"),
    raw("single quotes", b"{'jobId': 'x'}", "not one valid JSON object"),
    raw("two objects", b'{"jobId": "x"}{"jobId": "y"}', "not one valid JSON object"),
    raw("truncated", b'{"jobId": "x"', "not one valid JSON object"),
    raw("JSON array", b'[{"jobId": "x"}]', "must be a JSON object", "not an array"),
    raw("JSON string", b'"x"', "must be a JSON object", "not a string"),
    raw("JSON number", b"42", "must be a JSON object", "not a number"),
    raw("JSON null", b"null", "must be a JSON object", "not null"),
    raw("JSON true", b"true", "must be a JSON object", "not a boolean"),
    raw("NaN", b'{"jobId": "x", "timeOut": NaN}', "NaN is not valid JSON"),
    raw("Infinity", b'{"jobId": "x", "timeOut": Infinity}', "Infinity is not valid JSON"),
    raw("-Infinity", b'{"jobId": "x", "timeOut": -Infinity}', "-Infinity is not valid JSON"),
    raw("jobId twice", b'{"jobId": "x", "jobId": "y"}', "'jobId' is given twice"),
    raw("ifMatch twice", b'{"jobId": "x", "ifMatch": "a", "ifMatch": "*"}', "'ifMatch' is given twice"),
    raw(
        "key twice via an escape",
        b'{"jobId": "x", "forc\\u0065": true, "force": 1}',
        "'force' is given twice",
    ),
    raw("key twice inside a field", b'{"jobId": "x", "reason": {"a": 1, "a": 2}}', "'a' is given twice"),
    raw("10000 nested arrays", b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
    raw("10000 nested objects", b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
    raw("10000 nested in a field", b'{"jobId": "x", "reason": ' + b"[" * 10_000 + b"]}", "nested too deeply"),
    raw(
        "huge integer",
        b'{"jobId": "x", "timeOut": ' + b"9" * 5000 + b"}",
        "number of 5000 digits is too long",
    ),
    raw("256 KB JSON array", b"[" + b"1," * (BIG // 2 - 1) + b"1]", "must be a JSON object", "not an array"),
    # Big bodies (up to the Service Bus limit): the record keeps 64 KiB of them
    raw("256 KB of bytes", NOISE, "not UTF-8"),
    raw("256 KB of text", b"x" * BIG, "not one valid JSON object"),
    raw("256 KB of control characters", b"\x01" * BIG, "not one valid JSON object"),
    raw("256 KB of multi-byte text", "é".encode() * (BIG // 2), "not one valid JSON object"),
    fields("256 KB reason", ("$.reason", "<= 1024"), reason="r" * (BIG - 40)),
    fields("256 KB jobId", ("$.jobId",), jobId="x" * (BIG - 40)),
    fields(
        "256 KB unknown key", ("unknown field `" + "k" * 64 + "...`", *FIELDS_MSG), **{"k" * (BIG - 40): 1}
    ),
    fields("256 KB of nested lists", ("$.reason", "array"), reason=[[[[[]]]]] * (BIG // 12)),
    # Every field with a wrong type (null is absent for optional fields, not for jobId)
    raw("no jobId", b'{"force": true}', "missing required field `jobId`"),
    fields("jobId null", ("$.jobId", "null"), jobId=None),
    fields("jobId number", ("$.jobId", "int"), jobId=42),
    fields("jobId array", ("$.jobId", "array"), jobId=["x"]),
    fields("jobId object", ("$.jobId", "object"), jobId={"id": "x"}),
    fields("jobId true", ("$.jobId", "bool"), jobId=True),
    fields("account number", ("$.account", "int"), account=7),
    fields("force string", ("$.force", "str"), force="true"),
    fields("force 1", ("$.force", "int"), force=1),
    fields("force 0", ("$.force", "int"), force=0),
    fields("timeOut string", ("$.timeOut", "str"), timeOut="30"),
    fields("timeOut true", ("$.timeOut", "bool"), timeOut=True),
    fields("timeOut 1.5", ("$.timeOut", "float"), timeOut=1.5),
    raw("timeOut 1e3", b'{"jobId": "x", "timeOut": 1e3}', "$.timeOut", "float", job_id="x"),
    fields("timeOut 5.0", ("$.timeOut", "float"), timeOut=5.0),
    fields("timeOut 0", ("$.timeOut", ">= 1"), timeOut=0),
    fields("timeOut -1", ("$.timeOut", ">= 1"), timeOut=-1),
    fields("timeOut 2**31", ("$.timeOut", "<= 2147483647"), timeOut=2**31),
    fields("ifMatch number", ("$.ifMatch", "int"), ifMatch=1),
    fields("ifNoneMatch array", ("$.ifNoneMatch", "array"), ifNoneMatch=["*"]),
    fields("ifModifiedSince number", ("$.ifModifiedSince", "int"), ifModifiedSince=1_700_000_000),
    fields("ifUnmodifiedSince object", ("$.ifUnmodifiedSince", "object"), ifUnmodifiedSince={}),
    fields("clientRequestId number", ("$.clientRequestId", "int"), clientRequestId=123),
    fields("reason object", ("$.reason", "object"), reason={"text": "x"}),
    # jobIds at and past the pattern's edges: path traversal, encodings, lookalikes
    fields("jobId empty", ("$.jobId",), jobId=""),
    fields("jobId 65 chars", ("$.jobId",), jobId="x" * 65),
    fields("jobId with a space", ("$.jobId",), jobId="a b"),
    fields("jobId ../x", ("$.jobId",), jobId="../x"),
    fields("jobId ..", ("$.jobId",), jobId=".."),
    fields("jobId a/b", ("$.jobId",), jobId="a/b"),
    fields("jobId a%2Fb", ("$.jobId",), jobId="a%2Fb"),
    fields("jobId %2e%2e", ("$.jobId",), jobId="%2e%2e"),
    fields("jobId ?query", ("$.jobId",), jobId="x?force=true"),
    fields("jobId fullwidth letters", ("$.jobId",), jobId="\uff4a\uff4f\uff42"),
    fields("jobId Cyrillic o", ("$.jobId",), jobId="j\u043eb"),
    fields("jobId zero-width space", ("jobId",), jobId="job\u200b"),
    fields("jobId trailing newline", ("jobId",), jobId="job\n"),
    fields("jobId trailing CRLF", ("$.jobId",), jobId="job\r\n"),
    fields("jobId lone surrogate", ("$.jobId",), jobId="\ud800"),
    # ETags that could split or smuggle a header
    fields("ifMatch CR", ("$.ifMatch",), ifMatch='"0x1"\r'),
    fields("ifMatch LF", ("$.ifMatch",), ifMatch='"0x1"\nX-Injected: 1'),
    fields("ifMatch CRLF header", ("$.ifMatch",), ifMatch='"0x1"\r\nAuthorization: Bearer x'),
    fields("ifMatch NUL", ("$.ifMatch",), ifMatch='"0x\x001"'),
    fields("ifMatch DEL", ("$.ifMatch",), ifMatch='"0x1"\x7f'),
    fields("ifMatch trailing newline", ("ifMatch",), ifMatch='"0x1"\n'),
    fields("ifMatch empty", ("$.ifMatch",), ifMatch=""),
    fields("ifNoneMatch CR", ("$.ifNoneMatch",), ifNoneMatch="*\r"),
    fields("ifNoneMatch LF", ("ifNoneMatch",), ifNoneMatch="*\n"),
    fields("ifNoneMatch NUL", ("$.ifNoneMatch",), ifNoneMatch="\x00"),
    fields("ifNoneMatch DEL", ("$.ifNoneMatch",), ifNoneMatch="\x7f"),
    fields("ifNoneMatch non-ASCII", ("$.ifNoneMatch",), ifNoneMatch='"é"'),
    # Dates out of range, impossible, or without an offset
    fields("date year 0", ("ifModifiedSince", "RFC 3339"), ifModifiedSince="0000-01-01T00:00:00Z"),
    fields(
        "HTTP date year 0",
        ("ifModifiedSince", "1970 and 9999"),
        ifModifiedSince="Sat, 01 Jan 0000 00:00:00 GMT",
    ),
    fields(
        "HTTP date year 0001",
        ("ifUnmodifiedSince", "1970 and 9999"),
        ifUnmodifiedSince="Mon, 01 Jan 0001 00:00:00 GMT",
    ),
    fields("date year 10000", ("ifModifiedSince", "RFC 3339"), ifModifiedSince="10000-01-01T00:00:00Z"),
    fields("date 1969", ("ifUnmodifiedSince", "1970 and 9999"), ifUnmodifiedSince="1969-12-31T23:59:59Z"),
    fields("date Feb 30", ("ifUnmodifiedSince", "RFC 3339"), ifUnmodifiedSince="2026-02-30T10:00:00Z"),
    fields(
        "HTTP date Feb 30", ("ifModifiedSince", "RFC 7231"), ifModifiedSince="Mon, 30 Feb 2026 10:00:00 GMT"
    ),
    fields("date without offset", ("ifModifiedSince", "offset"), ifModifiedSince="2026-11-28T10:00:00"),
    fields(
        "date fullwidth digits",
        ("ifModifiedSince",),
        ifModifiedSince="\uff12\uff10\uff12\uff16-11-28T10:00:00Z",
    ),
    fields(
        "HTTP date Arabic digits",
        ("ifModifiedSince",),
        ifModifiedSince="Sat, \u0662\u0668 Nov 2026 10:00:00 GMT",
    ),
    # An endpoint or URL in any field
    fields("endpoint", ("unknown field `endpoint`", *FIELDS_MSG), endpoint="https://evil.example"),
    fields("url", ("unknown field `url`", *FIELDS_MSG), url="https://evil.example/jobs/x"),
    fields(
        "batchEndpoint", ("unknown field `batchEndpoint`", *FIELDS_MSG), batchEndpoint="https://evil.example"
    ),
    fields("BATCH_ENDPOINT", ("unknown field `BATCH_ENDPOINT`",), BATCH_ENDPOINT="https://evil.example"),
    fields("misspelt ifmatch", ("unknown field `ifmatch`", "ifMatch"), ifmatch="*"),
    fields("key with a newline", ("unknown field `a\\nb`",), **{"a\nb": 1}),
    fields("key with a lone surrogate", ("unknown field `\\ud800`",), **{"\ud800": 1}),
    fields("account not listed", ("account 'nope'", "BATCH_ACCOUNTS", LISTED), account="nope"),
    fields("account a URL", ("'https://evil.example'", "BATCH_ACCOUNTS"), account="https://evil.example"),
    fields("account a loopback URL", ("BATCH_ACCOUNTS",), account="http://127.0.0.1:1"),
    fields("account other case", ("'SECOND'", "BATCH_ACCOUNTS"), account="SECOND"),
    fields("account trailing space", ("'second '", "BATCH_ACCOUNTS"), account="second "),
    fields("account empty", ("$.account", "length >= 1"), account=""),
    fields("account 65 chars", ("$.account", "length <= 64"), account="a" * 65),
    fields("account lone surrogate", ("account '\\udfff'", "BATCH_ACCOUNTS"), account="\udfff"),
    fields("reason 1025 chars", ("$.reason", "<= 1024"), reason="r" * 1025),
    fields("clientRequestId not a GUID", ("$.clientRequestId",), clientRequestId="request-1"),
    fields(
        "clientRequestId in braces",
        ("$.clientRequestId",),
        clientRequestId="{0f8fad5b-d9cb-469f-a165-70867728950e}",
    ),
    fields(
        "clientRequestId URN",
        ("$.clientRequestId",),
        clientRequestId="urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
    ),
]


def check_record(record: ServiceBusReceivedMessage, message_id: str, case: Case) -> dict[str, Any]:
    """The InvalidMessage record as contract section 5 describes it; its description."""
    assert record.subject == "InvalidMessage"
    assert record.message_id == f"{message_id}:failed"
    assert record.correlation_id == message_id
    assert record.content_type == "application/json"
    expected_properties: dict[str, Any] = {
        "reason": "InvalidMessage",
        "originalMessageId": message_id,
        "retryAttempt": 0,
    }
    if case.job_id is not None:
        expected_properties["jobId"] = case.job_id
    if case.account is not None:
        expected_properties["account"] = case.account
    properties = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in (record.application_properties or {}).items()
    }
    assert properties == expected_properties
    raw_record = b"".join(record.body)
    assert len(raw_record) < SERVICE_BUS_LIMIT - 8 * 1024  # room for headers: the record fits the queue
    body: dict[str, Any] = json.loads(raw_record)
    assert body["reason"] == "InvalidMessage"
    assert (body["jobId"], body["account"]) == (case.job_id, case.account)
    assert (body["attempts"], body["retryAttempt"], body["httpStatus"]) == (0, 0, None)
    assert (body["batchError"], body["requestId"], body["clientRequestId"]) == (None, None, None)
    description = body["description"]
    assert len(description.splitlines()) == 1
    assert description.startswith("The message is not a valid deletion request: ")
    assert "Nothing was sent to Batch" in description
    assert "Traceback" not in description
    check_original(body["originalMessage"], message_id, case.body)
    return body


def check_original(original: dict[str, Any], message_id: str, raw_body: bytes) -> None:
    """The original body, kept as text or base64, cut at 64 KiB (contract section 5)."""
    assert original["messageId"] == message_id
    assert (original["contentType"], original["deliveryCount"]) == ("application/json", 1)
    try:
        text: str | None = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        assert "body" not in original
        kept = base64.b64decode(original["bodyBase64"])
        assert kept == raw_body[:MAX_ORIGINAL_BODY]
    else:
        assert "bodyBase64" not in original
        kept_text: str = original["body"]
        assert text.startswith(kept_text)
        escaped = len(json.dumps(kept_text, ensure_ascii=False).encode()) - 2
        assert escaped <= MAX_ORIGINAL_BODY
        kept = kept_text.encode()
        if kept != raw_body:
            assert escaped > MAX_ORIGINAL_BODY - 8  # cut only as far as needed (at a character)
    if kept == raw_body:
        assert "bodyTruncated" not in original
    else:
        assert (original["bodyTruncated"], original["bodySize"]) == (True, len(raw_body))


@pytest.mark.parametrize("case", CATALOGUE)
async def test_bad_input_ends_as_one_invalid_message_record(rig: Rig, case: Case) -> None:
    """A named bad body: InvalidMessage, one record whose one-line description names the problem, the
    original body kept, and nothing sent to Batch (no token either)."""
    message_id = f"bad-{uuid.uuid4()}"
    delivery = await rig.deliver(case.body, message_id)
    result = delivery.result
    assert (result.outcome, result.attempts, result.http_status) == ("InvalidMessage", 0, None)
    assert (named(result.job_id), named(result.account)) == (case.job_id, case.account)  # the log's
    assert (delivery.batch_requests, delivery.token_requests, delivery.retry_copies) == (0, 0, 0)
    assert len(delivery.records) == 1, f"{len(delivery.records)} failure records"
    body = check_record(delivery.records[0], message_id, case)
    for word in case.words:
        assert word in body["description"], f"{word!r} missing from {body['description']!r}"


@settings(parent=FUZZ, max_examples=30)
@given(body=st.one_of(any_bodies, mutations().map(lambda mutation: mutation.raw)))
async def test_random_bad_bodies_end_as_one_invalid_message_record(rig: Rig, body: bytes) -> None:
    """Random bad bodies (the parser's fuzz strategies) through the processor: the same guarantees."""
    parsed = outcome(body)
    assume(not (isinstance(parsed, DeletionRequest) and parsed.account in (None, LISTED)))  # would be sent
    message_id = f"random-{uuid.uuid4()}"
    delivery = await rig.deliver(body, message_id)
    result = delivery.result
    assert (result.outcome, result.attempts) == ("InvalidMessage", 0)
    assert (delivery.batch_requests, delivery.token_requests, delivery.retry_copies) == (0, 0, 0)
    assert len(delivery.records) == 1, f"{len(delivery.records)} failure records"
    check_record(delivery.records[0], message_id, Case(body, (), named(result.job_id), named(result.account)))


async def test_a_valid_message_does_reach_batch(rig: Rig) -> None:
    """The counts above can move: a valid message, through a processor with its own token cache, makes
    one Batch request and one token request, and leaves no record."""
    processor = Processor.create(rig.settings)
    try:
        delivery = await rig.deliver(
            b'{"jobId": "rig-check"}', f"valid-{uuid.uuid4()}", processor=processor, record=False
        )
    finally:
        await processor.close()
    assert (delivery.result.outcome, delivery.result.attempts) == ("AlreadyDeleted", 1)
    assert (delivery.batch_requests, delivery.token_requests, delivery.records) == (1, 1, [])
    assert rig.batch.requests(limit=1)[0]["path"] == "/jobs/rig-check"
