"""The deletion request (contract section 1): what parse_request accepts, what it refuses and why, and
the published JSON Schema that producers validate against."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from delete_job.request import InvalidMessageError, json_schema, parse_request
from shared.batch_client import DeleteJobOptions

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "deletion-request.schema.json"
GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
ALL_FIELDS = [
    "jobId",
    "account",
    "force",
    "timeOut",
    "ifMatch",
    "ifNoneMatch",
    "ifModifiedSince",
    "ifUnmodifiedSince",
    "clientRequestId",
    "reason",
]


def body(**fields: Any) -> bytes:
    """A JSON body with jobId "x" unless the fields say otherwise."""
    return json.dumps({"jobId": "x", **fields}).encode()


def refused(raw: bytes) -> InvalidMessageError:
    """The InvalidMessageError parse_request raises; anything else is a failure of the contract."""
    try:
        parse_request(raw)
    except InvalidMessageError as exc:
        return exc
    except Exception as exc:  # any other exception abandons the message instead of recording it
        pytest.fail(
            f"parse_request raised {type(exc).__name__}({exc}) instead of InvalidMessageError: the message "
            "would be abandoned and redelivered instead of getting an InvalidMessage failure record"
        )
    pytest.fail(f"parse_request accepted an invalid message: {raw[:200]!r}")


def accepts(raw: bytes) -> bool:
    try:
        parse_request(raw)
    except InvalidMessageError:
        return False
    return True


INVALID: list[tuple[str, bytes, tuple[str, ...]]] = [
    # (case, body, words the description must contain)
    ("misspelt ifmatch", body(ifmatch='"0x1"'), ("ifmatch", "allowed", "ifMatch")),
    ("endpoint smuggled", body(endpoint="https://evil.example"), ("endpoint", "never comes from a message")),
    ("url smuggled", body(url="https://evil.example"), ("`url`", "allowed")),
    ("key twice", b'{"jobId": "x", "jobId": "y"}', ("jobId", "twice")),
    ("key twice via escape", b'{"jobId": "x", "force": true, "forc\\u0065": true}', ("force", "twice")),
    ("no jobId", b'{"force": true}', ("jobId", "missing")),
    ("jobId null", body(jobId=None), ("$.jobId", "null")),
    ("jobId number", body(jobId=42), ("$.jobId", "int")),
    ("bool for int", body(timeOut=True), ("$.timeOut", "bool")),
    ("int for bool", body(force=1), ("$.force", "int")),
    ("string for bool", body(force="true"), ("$.force", "str")),
    ("string for int", body(timeOut="5"), ("$.timeOut", "str")),
    ("fractional timeOut", body(timeOut=1.5), ("$.timeOut", "float")),
    ("integral float timeOut", body(timeOut=5.0), ("$.timeOut", "float")),
    ("timeOut overflowing to inf", b'{"jobId": "x", "timeOut": 1e400}', ("$.timeOut",)),
    ("timeOut 0", body(timeOut=0), ("$.timeOut", ">= 1")),
    ("timeOut negative", body(timeOut=-5), ("$.timeOut", ">= 1")),
    ("timeOut above int32", body(timeOut=2**31), ("$.timeOut", "2147483647")),
    ("ifMatch number", body(ifMatch=1), ("$.ifMatch", "int")),
    ("account number", body(account=7), ("$.account", "int")),
    ("account empty", body(account=""), ("$.account", "length")),
    ("reason object", body(reason={"a": 1}), ("$.reason", "object")),
    ("reason over 1024", body(reason="r" * 1025), ("$.reason", "1024")),
    ("clientRequestId not a GUID", body(clientRequestId="request-1"), ("clientRequestId",)),
    ("clientRequestId with braces", body(clientRequestId=f"{{{GUID}}}"), ("clientRequestId",)),
    ("clientRequestId without hyphens", body(clientRequestId=GUID.replace("-", "")), ("clientRequestId",)),
    ("clientRequestId trailing newline", body(clientRequestId=GUID + "\n"), ("clientRequestId",)),
    ("body not UTF-8", b'{"jobId": "\xff"}', ("UTF-8",)),
    ("body UTF-16", '{"jobId": "x"}'.encode("utf-16"), ("UTF-8",)),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"jobId": "x"}', ("byte order mark",)),
    ("empty body", b"", ("JSON",)),
    ("not JSON", b"delete job x", ("JSON",)),
    ("two objects", b'{"jobId": "x"} {"jobId": "y"}', ("JSON",)),
    ("JSON array", b'[{"jobId": "x"}]', ("object", "array")),
    ("JSON string", b'"x"', ("object", "string")),
    ("JSON number", b"42", ("object", "number")),
    ("JSON null", b"null", ("object", "null")),
    ("JSON true", b"true", ("object", "boolean")),
    ("NaN", b'{"jobId": "x", "reason": NaN}', ("NaN",)),
    ("Infinity", b'{"jobId": "x", "timeOut": Infinity}', ("Infinity",)),
    ("-Infinity", b'{"jobId": "x", "timeOut": -Infinity}', ("Infinity",)),
    ("100000 levels of [", b"[" * 100_000, ("nested",)),
    ("deep nesting in a field", b'{"jobId": "x", "reason": ' + b"[" * 100_000, ("nested",)),
    ("100000 levels of objects", b'{"a": ' * 100_000, ("nested",)),
    ("huge integer", b'{"jobId": "x", "timeOut": ' + b"9" * 5000 + b"}", ("JSON",)),
]
INVALID += [
    (f"{field} with {name}", body(**{field: f'"abc{char}def"'}), (field,))
    for field in ("ifMatch", "ifNoneMatch")
    for name, char in [("CR", "\r"), ("LF", "\n"), ("NUL", "\0"), ("tab", "\t"), ("DEL", "\x7f"), ("é", "é")]
]
INVALID += [
    (f"{field} {text!r}", body(**{field: text}), (field,))
    for field in ("ifMatch", "ifNoneMatch")
    for text in ("", '"abc"\n', "\u2028", "x" * 1025)
]
INVALID += [
    (f"ifModifiedSince {text!r}", body(ifModifiedSince=text), ("ifModifiedSince", *extra))
    for text, extra in [
        ("", ()),
        ("yesterday", ("RFC 3339",)),
        ("2026-11-28", ("RFC 3339",)),
        ("2026-11-28T10:00:00", ("offset",)),  # naive: no offset
        ("2026-11-28T10:00", ("RFC 3339",)),
        ("2026-02-30T10:00:00Z", ("RFC 3339",)),
        ("2026-11-28T24:00:00Z", ("RFC 3339",)),
        ("2026-11-28T10:00:00+25:00", ("RFC 3339",)),
        ("Sat, 28 Foo 2026 10:00:00 GMT", ("RFC 7231",)),
        ("Sat, 28 Nov 2026 10:00:00", ("RFC 7231",)),
        ("Saturday, 28-Nov-26 10:00:00 GMT", ("RFC 7231",)),
        ("1969-12-31T23:59:59Z", ("1970",)),
        ("1970-01-01T00:30:00+01:00", ("1970",)),  # 1969 in UTC
        ("Wed, 31 Dec 1969 23:59:59 GMT", ("1970",)),
        ("10000-01-01T00:00:00Z", ()),
        ("9999-12-31T23:00:00-05:00", ()),  # year 10000 in UTC
        ("0001-01-01T00:00:00+01:00", ()),  # year 0 in UTC
    ]
]
INVALID += [
    ("ifUnmodifiedSince naive", body(ifUnmodifiedSince="2026-11-28T10:00:00"), ("ifUnmodifiedSince",)),
    ("ifUnmodifiedSince 1969", body(ifUnmodifiedSince="1969-07-20T20:17:00Z"), ("ifUnmodifiedSince",)),
]
BAD_JOB_IDS = [
    "../pools/x",
    "a%2Fb",
    "a/b",
    "a.b",
    "a b",
    "x" * 65,
    "a\n",
    "\na",
    "jöb",
    "\ud800",
    "",
    "a\u200b",
]
INVALID += [(f"jobId {job_id!r}", body(jobId=job_id), ("jobId",)) for job_id in BAD_JOB_IDS]


@pytest.mark.parametrize(("raw", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_message_is_refused_with_a_description_naming_the_problem(
    raw: bytes, words: tuple[str, ...]
) -> None:
    """Every kind of invalid body is an InvalidMessageError whose one-line description names the problem."""
    description = refused(raw).description
    for word in words:
        assert word in description, f"{word!r} missing from {description!r}"
    assert len(description.splitlines()) == 1


def test_unknown_field_description_lists_every_allowed_field() -> None:
    """A misspelt field is refused with the full list of allowed fields, so the producer can fix it."""
    description = refused(body(ifmatch='"0x1"')).description
    for name in ALL_FIELDS:
        assert name in description


@pytest.mark.parametrize("job_id", BAD_JOB_IDS, ids=repr)
def test_error_carries_the_invalid_job_id(job_id: str) -> None:
    """The error carries the message's jobId even when the jobId itself is what is wrong (made
    encodable: a lone surrogate from a JSON escape becomes '?', so the failure record can hold it)."""
    assert refused(body(jobId=job_id)).job_id == job_id.encode("utf-8", errors="replace").decode()


@pytest.mark.parametrize(
    "raw",
    [
        body(jobId="nightly-42", timeOut=0),
        body(jobId="nightly-42", ifmatch="x"),
        body(jobId="nightly-42", force=1),
    ],
)
def test_error_names_the_job_when_another_field_is_wrong(raw: bytes) -> None:
    """The failure record can name the job: the error carries a string jobId and account."""
    error = refused(raw)
    assert error.job_id == "nightly-42"


def test_error_carries_the_account() -> None:
    """The account named by an invalid message is kept for the failure record."""
    assert refused(body(account="eu", force="yes")).account == "eu"


@pytest.mark.parametrize("raw", [body(jobId=42), b'{"force": true}', b"[]", b"\xff"])
def test_error_has_no_job_id_when_the_message_has_no_string_job_id(raw: bytes) -> None:
    """No jobId is invented when the message has none as a string."""
    assert refused(raw).job_id is None


def test_minimal_request() -> None:
    """`{"jobId": "x"}` is a request with nothing else to send."""
    request = parse_request(b'{"jobId": "x"}')
    assert request.job_id == "x"
    assert request.account is None
    assert request.reason is None
    assert request.options() == DeleteJobOptions()


def test_every_field() -> None:
    """A request using every field keeps every value, and options() carries what goes to Batch."""
    request = parse_request(
        body(
            jobId="nightly-42",
            account="eu",
            force=True,
            timeOut=45,
            ifMatch='"0x8DB1"',
            ifNoneMatch='W/"0x8DB2"',
            ifModifiedSince="2026-11-28T10:00:00Z",
            ifUnmodifiedSince="Sat, 28 Nov 2026 12:00:00 GMT",
            clientRequestId=GUID.upper(),
            reason="workflow 42 finished",
        )
    )
    assert (request.job_id, request.account, request.reason) == ("nightly-42", "eu", "workflow 42 finished")
    assert request.options() == DeleteJobOptions(
        force=True,
        time_out=45,
        if_match='"0x8DB1"',
        if_none_match='W/"0x8DB2"',
        if_modified_since=datetime(2026, 11, 28, 10, tzinfo=UTC),
        if_unmodified_since=datetime(2026, 11, 28, 12, tzinfo=UTC),
        client_request_id=GUID.upper(),
    )


def test_force_false_is_sent() -> None:
    """force=false is a value to send, not the same as absent."""
    assert parse_request(body(force=False)).options().force is False


def test_null_optional_fields_count_as_absent() -> None:
    """Every optional field given as null parses like the minimal request."""
    nulls = dict.fromkeys(ALL_FIELDS[1:])
    assert parse_request(body(**nulls)) == parse_request(body())


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T10:00:00Z",
        "2026-11-28t10:00:00z",
        "2026-11-28T10:00:00.000Z",
        "2026-11-28T10:00:00+00:00",
        "2026-11-28T11:30:00+01:30",
        "2026-11-28T05:00:00-05:00",
        "2026-11-29T00:00:00+14:00",
        "Sat, 28 Nov 2026 10:00:00 GMT",
    ],
)
@pytest.mark.parametrize("field", ["ifModifiedSince", "ifUnmodifiedSince"])
def test_dates_become_aware_utc_datetimes_at_the_right_instant(text: str, field: str) -> None:
    """Both date forms, with any offset, give the same UTC instant in options()."""
    options = parse_request(body(**{field: text})).options()
    moment = options.if_modified_since if field == "ifModifiedSince" else options.if_unmodified_since
    assert moment == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
def test_dates_at_the_ends_of_the_range_are_accepted(text: str) -> None:
    """1970 through 9999 are valid years."""
    assert parse_request(body(ifModifiedSince=text)).options().if_modified_since is not None


@pytest.mark.parametrize("job_id", ["x" * 64, "A", "0", "-", "_", "Nightly_Build-42"])
def test_job_ids_matching_the_pattern_are_accepted(job_id: str) -> None:
    """Letters, digits, hyphens and underscores, 1 to 64 of them."""
    assert parse_request(body(jobId=job_id)).job_id == job_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeOut", 1),
        ("timeOut", 2**31 - 1),
        ("ifMatch", "*"),
        ("ifMatch", "".join(chr(c) for c in range(0x20, 0x7F))),
        ("ifNoneMatch", "x" * 1024),
        ("reason", "r" * 1024),
        ("reason", "workflow 42 finished: ünïcödé ok"),
        ("account", "a" * 64),
    ],
    ids=repr,
)
def test_values_at_the_bounds_are_accepted(field: str, value: object) -> None:
    """The edges of each field's range are valid."""
    assert accepts(body(**{field: value}))


def test_committed_schema_is_the_generated_one() -> None:
    """schemas/deletion-request.schema.json is exactly what the model generates."""
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == json_schema(), (
        "schemas/deletion-request.schema.json is out of date with DeletionRequest: run `make schema`"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """Producers can load the published schema with a standard validator."""
    Draft202012Validator.check_schema(json_schema())
    assert json_schema()["required"] == ["jobId"]
    assert set(json_schema()["properties"]) == set(ALL_FIELDS)


# Bodies where JSON Schema can decide. Not here: duplicate keys, NaN, dates (the schema cannot say),
# 5.0 for timeOut (JSON Schema counts it an integer) and strings ending in "\n" (jsonschema uses
# Python's re.search, whose `$` matches before a final newline; ECMA-262's does not).
SCHEMA_CASES: list[dict[str, Any]] = [
    {"jobId": "x"},
    {"jobId": "x" * 64},
    {"jobId": "x" * 65},
    {"jobId": ""},
    {"jobId": "a/b"},
    {"jobId": "../pools/x"},
    {"jobId": "jöb"},
    {"jobId": None},
    {"jobId": 42},
    {},
    {"force": True},
    {"jobId": "x", "ifmatch": "*"},
    {"jobId": "x", "endpoint": "https://evil.example"},
    dict.fromkeys(ALL_FIELDS[1:]) | {"jobId": "x"},
    {"jobId": "x", "force": 1},
    {"jobId": "x", "force": "true"},
    {"jobId": "x", "force": False},
    {"jobId": "x", "timeOut": True},
    {"jobId": "x", "timeOut": "5"},
    {"jobId": "x", "timeOut": 1.5},
    {"jobId": "x", "timeOut": 0},
    {"jobId": "x", "timeOut": -1},
    {"jobId": "x", "timeOut": 1},
    {"jobId": "x", "timeOut": 2**31 - 1},
    {"jobId": "x", "timeOut": 2**31},
    {"jobId": "x", "ifMatch": '"0x8DB1"'},
    {"jobId": "x", "ifMatch": ""},
    {"jobId": "x", "ifMatch": "a\rb"},
    {"jobId": "x", "ifNoneMatch": "a\x00b"},
    {"jobId": "x", "ifNoneMatch": "a\x7fb"},
    {"jobId": "x", "ifNoneMatch": "é"},
    {"jobId": "x", "ifNoneMatch": "x" * 1025},
    {"jobId": "x", "ifModifiedSince": ""},
    {"jobId": "x", "ifModifiedSince": 1700000000},
    {"jobId": "x", "ifUnmodifiedSince": "x" * 65},
    {"jobId": "x", "clientRequestId": GUID},
    {"jobId": "x", "clientRequestId": f"{{{GUID}}}"},
    {"jobId": "x", "clientRequestId": "request-1"},
    {"jobId": "x", "reason": "r" * 1024},
    {"jobId": "x", "reason": "r" * 1025},
    {"jobId": "x", "reason": 5},
    {"jobId": "x", "account": ""},
    {"jobId": "x", "account": "a" * 64},
    {"jobId": "x", "account": "a" * 65},
    {"jobId": "x", "account": ["eu"]},
]


@pytest.mark.parametrize("data", SCHEMA_CASES, ids=lambda d: json.dumps(d)[:60])
def test_schema_and_parser_agree(data: dict[str, Any]) -> None:
    """A producer validating with the published schema gets the parser's answer."""
    by_schema = Draft202012Validator(json_schema()).is_valid(data)
    assert by_schema == accepts(json.dumps(data).encode()), f"schema says valid={by_schema}"
