"""Property-based tests of `parse_request` (contract section 1), pure and fast.

(a) any bytes at all end as a request or an `InvalidMessageError` with one actionable line, never another
exception (which would abandon the message instead of recording it); (b) every request built from the
contract's field rules parses and reaches Batch as the contract says (query, headers, dates in RFC 7231
GMT form); (c) a valid request with one thing made wrong is refused with a description naming that
field; and the published JSON Schema agrees with the parser wherever JSON Schema can express the rule.

Deterministic and bounded for CI (`derandomize=True`, a fixed number of examples, no deadline, no
example database); `FUZZ_MAX_EXAMPLES=20000` runs a deeper search locally.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from delete_job.request import DeletionRequest, InvalidMessageError, json_schema, parse_request
from shared.batch_client import build_request_parts

settings.register_profile(
    "delete-job-fuzz-ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "300")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("delete-job-fuzz-ci")

API_VERSION = "2025-06-01"
# The contract's fields (section 1), written out rather than read from the model under test.
OPTIONAL_FIELDS = [
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
FIELDS = ["jobId", *OPTIONAL_FIELDS]
STRING_FIELDS = ["jobId", "account", "ifMatch", "ifNoneMatch", "ifModifiedSince", "ifUnmodifiedSince"]
STRING_FIELDS += ["clientRequestId", "reason"]
ETAG_FIELDS = ["ifMatch", "ifNoneMatch"]
DATE_FIELDS = ["ifModifiedSince", "ifUnmodifiedSince"]
INT32_MAX = 2**31 - 1
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SCHEMA = Draft202012Validator(json_schema())


def outcome(raw: bytes) -> DeletionRequest | InvalidMessageError:
    """What parse_request makes of `raw`: any exception other than InvalidMessageError fails the test."""
    try:
        return parse_request(raw)
    except InvalidMessageError as exc:
        return exc


def check_refusal(error: InvalidMessageError) -> None:
    """A refusal a failure record can carry: one non-empty line; jobId/account encodable as UTF-8."""
    assert error.description.strip(), "empty description"
    assert len(error.description.splitlines()) == 1, f"not one line: {error.description!r}"
    assert len(error.description) <= 1000, f"{len(error.description)} characters: the hint gets cut"
    assert str(error) == error.description
    for value in (error.job_id, error.account):
        if value is not None:
            value.encode("utf-8")  # an application property of the record: must be encodable


def refused(raw: bytes) -> InvalidMessageError:
    result = outcome(raw)
    assert isinstance(result, InvalidMessageError), f"accepted an invalid message: {raw[:300]!r}"
    check_refusal(result)
    return result


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate of a UTC moment, written independently of the code under test."""
    moment = moment.astimezone(UTC)
    return (
        f"{DAYS[moment.weekday()]}, {moment.day:02d} {MONTHS[moment.month - 1]} {moment.year:04d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} GMT"
    )


# --- valid values, from the contract's field rules ------------------------------------------------

JOB_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
job_ids = st.one_of(
    st.text(JOB_ID_ALPHABET, min_size=1, max_size=64),
    st.sampled_from(["x" * 64, "-", "_", "0", "nightly-42"]),
)
etags = st.one_of(
    st.text(PRINTABLE_ASCII, min_size=1, max_size=64),
    st.sampled_from(["*", '"0x8DD1F2A3B4C5D6E"', 'W/"0x8DB2"', "x" * 1024, PRINTABLE_ASCII]),
)
guids = st.tuples(st.uuids(), st.booleans()).map(lambda t: str(t[0]).upper() if t[1] else str(t[0]))
time_outs = st.one_of(st.integers(1, 120), st.integers(1, INT32_MAX), st.sampled_from([1, INT32_MAX]))
accounts = st.text(min_size=1, max_size=64)  # the parser takes any name; the processor checks the list
reasons = st.one_of(st.text(max_size=200), st.sampled_from(["r" * 1024, "ünïcödé 🎉"]))
instants = st.one_of(
    st.datetimes(datetime(1970, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)),
    st.sampled_from([datetime(1970, 1, 1), datetime(9999, 12, 31, 23, 59, 59), datetime(2026, 11, 28, 10)]),
).map(lambda moment: moment.replace(tzinfo=UTC))
offsets = st.one_of(st.just(0), st.integers(-(23 * 60 + 59), 23 * 60 + 59))  # minutes, as RFC 3339 writes


@st.composite
def dates(draw: st.DrawFn) -> tuple[str, str]:
    """(text in the message, the If-(Un)Modified-Since header Batch must get) for a moment in range."""
    moment = draw(instants)
    if draw(st.booleans()):
        return http_date(moment), http_date(moment)
    minutes = draw(offsets)
    try:
        local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    except OverflowError:  # an offset past year 9999 (or before year 1): write it in UTC
        local, minutes = moment, 0
    separator = draw(st.sampled_from("Tt "))
    digits = draw(st.integers(0, 9))
    fraction = f".{local.microsecond:06d}{draw(st.text(string.digits, min_size=3, max_size=3))}"[
        : digits + 1 if digits else 0
    ]
    if minutes == 0 and draw(st.booleans()):
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    else:
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = f"{local:%Y-%m-%d}{separator}{local:%H:%M:%S}{fraction}{zone}"
    return text, http_date(moment)  # the fraction is dropped: HTTP dates have whole seconds


@dataclass
class Valid:
    """A valid request and what the contract says Batch receives for it."""

    data: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "account": accounts,
    "force": st.booleans(),
    "timeOut": time_outs,
    "ifMatch": etags,
    "ifNoneMatch": etags,
    "clientRequestId": guids,
    "reason": reasons,
}
HEADERS = {
    "ifMatch": "if-match",
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
    "ifUnmodifiedSince": "if-unmodified-since",
    "clientRequestId": "client-request-id",
}


@st.composite
def valid_requests(draw: st.DrawFn) -> Valid:
    request = Valid({"jobId": draw(job_ids)})
    for name in draw(st.lists(st.sampled_from(OPTIONAL_FIELDS), unique=True)):
        if draw(st.integers(0, 5)) == 0:
            request.data[name] = None  # null counts as absent
        elif name in DATE_FIELDS:
            request.data[name], request.headers[HEADERS[name]] = draw(dates())
        else:
            request.data[name] = draw(VALUES[name])
            if name in HEADERS:
                request.headers[HEADERS[name]] = request.data[name]
    return request


def encode(data: dict[str, Any], *, ensure_ascii: bool, indent: int | None) -> bytes:
    """`data` as UTF-8 JSON; a lone surrogate, which UTF-8 cannot hold, is always written as an escape."""
    try:
        return json.dumps(data, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=indent).encode("utf-8")


Spelling = Callable[[dict[str, Any]], bytes]


def spelling(ensure_ascii: bool, indent: int | None) -> Spelling:
    """One way to write JSON: escaped or raw non-ASCII, compact or indented."""
    return lambda data: encode(data, ensure_ascii=ensure_ascii, indent=indent)


spellings = st.builds(spelling, st.booleans(), st.sampled_from([None, 0, 2]))


# --- (a) arbitrary bytes ------------------------------------------------------------------------

# Text with lone surrogates too: a JSON escape such as \ud800 decodes to one.
any_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=20)


def json_like(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | any_text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
        max_leaves=12,
    )


json_values = json_like(st.floats())  # NaN and Infinity too: json.dumps writes them
valid_json_values = json_like(st.floats(allow_nan=False, allow_infinity=False))
contract_shaped = st.dictionaries(
    st.sampled_from([*FIELDS, "endpoint", "url", "ifmatch"]) | any_text, json_values, max_size=6
)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid request's bytes with a few bytes replaced, inserted or cut off."""
    raw = bytearray(encode(draw(valid_requests()).data, ensure_ascii=draw(st.booleans()), indent=None))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["replace", "insert", "cut"]))
        byte = draw(st.integers(0, 255))
        if how == "insert":
            raw.insert(at, byte)
        elif how == "cut":
            del raw[at:]
        elif at < len(raw):
            raw[at] = byte
    return bytes(raw)


any_bodies = st.one_of(
    st.binary(max_size=512),
    any_text.map(lambda text: text.encode("utf-8", errors="surrogatepass")),
    json_values.map(lambda value: json.dumps(value).encode()),
    contract_shaped.map(lambda value: json.dumps(value).encode()),
    damaged(),
    st.sampled_from([b"", b"\xef\xbb\xbf", b"[" * 5000, b'{"a":' * 5000, b"\xed\xa0\x80", b"\x00" * 64]),
)


@FUZZ
@given(raw=any_bodies)
# Found by this test, kept as explicit examples: a key that held a newline, a lone surrogate (msgspec
# raised UnicodeEncodeError) or 200,000 characters (the record cut the description before its hint).
@example(b'{"\\u000a": null}')
@example(b'{"jobId": "x", "\\ud800": 1}')
@example(b'{"jobId": "x", "' + b"k" * 200_000 + b'": 1}')
def test_any_bytes_end_as_a_request_or_one_actionable_line(raw: bytes) -> None:
    """Whatever the body, parse_request returns a request or raises InvalidMessageError with one line."""
    result = outcome(raw)
    if isinstance(result, InvalidMessageError):
        check_refusal(result)


# --- (b) valid requests ---------------------------------------------------------------------------


@FUZZ
@given(request=valid_requests(), spell=spellings, order=st.randoms(use_true_random=False))
def test_valid_requests_parse_and_reach_batch_as_the_contract_says(
    request: Valid, spell: Spelling, order: random.Random
) -> None:
    """Every request the contract allows parses, and its Delete Job request carries exactly its options."""
    items = list(request.data.items())
    order.shuffle(items)  # the order of the keys does not matter
    parsed = parse_request(spell(dict(items)))
    present = {name: value for name, value in request.data.items() if value is not None}
    path, query, headers = build_request_parts(parsed.job_id, parsed.options(), api_version=API_VERSION)

    assert path == f"/jobs/{present['jobId']}"
    expected_query = {"api-version": API_VERSION}
    if "timeOut" in present:
        expected_query["timeOut"] = str(present["timeOut"])
    if "force" in present:
        expected_query["force"] = "true" if present["force"] else "false"
    assert query == expected_query
    optional_headers = {name: value for name, value in headers.items() if name in HEADERS.values()}
    if "clientRequestId" not in present:  # absent: a new GUID per attempt
        assert re.fullmatch(
            r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", optional_headers.pop("client-request-id")
        )
    assert optional_headers == request.headers
    assert (parsed.account, parsed.reason) == (present.get("account"), present.get("reason"))


# --- (c) one thing wrong --------------------------------------------------------------------------


@dataclass
class Mutation:
    """A request made invalid in one way; `names` must appear in the description. `data` is the object
    when JSON can hold it (not for a repeated key); `schema_can_say` is False for the documented
    differences between the JSON Schema and the parser."""

    kind: str
    raw: bytes
    names: str
    data: dict[str, Any] | None
    schema_can_say: bool = True


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
NOT_A_STRING: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(),
    finite_floats,
    st.lists(st.none(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.none(), max_size=2),
)
WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = dict.fromkeys(STRING_FIELDS, NOT_A_STRING)
WRONG_TYPES["jobId"] = NOT_A_STRING | st.none()
WRONG_TYPES["force"] = st.one_of(
    st.sampled_from([0, 1, "true", "false", "True", 1.0]), st.integers(), finite_floats, st.text(max_size=5)
)
WRONG_TYPES["timeOut"] = st.one_of(
    st.sampled_from([True, False, "30", "5", 5.0, 1e3, 1.5, [30], {"s": 30}]),
    finite_floats,
    st.text(string.digits, min_size=1, max_size=4),
)


def integral(value: Any) -> bool:
    """5.0 and 1e3: JSON Schema counts them integers (and checks the bounds); the parser refuses floats."""
    return isinstance(value, float) and value.is_integer() and 1 <= value <= INT32_MAX


bad_job_ids = st.one_of(
    st.text(min_size=0, max_size=80).filter(lambda text: not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text)),
    st.sampled_from(
        [
            "",
            "x" * 65,
            "a b",
            "../x",
            "a%2Fb",
            "%2e%2e",
            "..",
            "a/b",
            "\uff4aob",
            "j\u043eb",
            "job\u200b",
            "job\n",
        ]
    ),
    job_ids.map(lambda job_id: job_id + "\n"),
)
bad_guids = st.one_of(
    st.text(max_size=40).filter(
        lambda text: not re.fullmatch(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}", text)
    ),
    guids.map(lambda guid: f"{{{guid}}}"),
    guids.map(lambda guid: guid.replace("-", "")),
    guids.map(lambda guid: f"urn:uuid:{guid}"),
    guids.map(lambda guid: guid + "\n"),
)
# Characters an ETag must not hold: every control character, DEL, C1 controls, anything beyond ASCII.
etag_breakers = st.one_of(
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\t", "\x7f", "\x85", "\u2028", "é", "\ud800"]),
    st.characters(max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F),
)


@st.composite
def bad_etags(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["", "x" * 1025]))
    etag = draw(etags)
    at = draw(st.integers(0, len(etag)))
    return etag[:at] + draw(etag_breakers) + etag[at:]


@st.composite
def bad_dates(draw: st.DrawFn) -> str:
    """Dates out of range, impossible, without an offset, or not in either format."""
    year = draw(st.one_of(st.integers(0, 1969), st.integers(10000, 99999)))
    moment = draw(st.datetimes(datetime(1, 1, 1), datetime(1969, 12, 31, 23, 59, 59)))
    choices = [
        f"{year:04d}-06-15T10:00:00Z",
        f"{DAYS[0]}, 15 Jun {year:04d} 10:00:00 GMT",
        f"{moment:%Y-%m-%dT%H:%M:%S}Z",
        http_date(moment.replace(tzinfo=UTC)),
        "1970-01-01T00:30:00+01:00",  # 1969 in UTC
        "9999-12-31T23:30:00-01:00",  # 10000 in UTC
        "2026-02-30T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "Mon, 30 Feb 2026 10:00:00 GMT",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:60:00Z",
        "2026-11-28T10:00:00+24:00",
        "2026-11-28T10:00:00",  # no offset
        "2026-11-28",
        "Sat, 28 Nov 2026 10:00:00",
        "Sat, 28 Nov 2026 10:00:00 UTC",
        "Sat, 28 Nov 2026 10:00:00 +0000",
        "\uff12\uff10\uff12\uff16-11-28T10:00:00Z",  # fullwidth digits
        "Sat, \u0662\u0668 Nov 2026 10:00:00 GMT",  # Arabic-Indic digits
        "Sat, 28 Nov \uff12\uff10\uff12\uff16 10:00:00 GMT",
        "2026-11-28T10:00:00Z\n",
        "1700000000",
    ]
    return draw(st.sampled_from(choices) | st.text(max_size=30).filter(lambda text: not text[:1].isdigit()))


PATTERN_BREAKERS: dict[str, st.SearchStrategy[Any]] = {
    "jobId": bad_job_ids,
    "clientRequestId": bad_guids,
    "ifMatch": bad_etags(),
    "ifNoneMatch": bad_etags(),
    "ifModifiedSince": bad_dates(),
    "ifUnmodifiedSince": bad_dates(),
    "account": st.one_of(st.just(""), st.text(min_size=65, max_size=80)),
    "reason": st.text(min_size=1025, max_size=1100),
    "timeOut": st.one_of(st.integers(max_value=0), st.integers(min_value=INT32_MAX + 1), st.just(-0)),
}
SMUGGLED = ["endpoint", "url", "batchEndpoint", "ifmatch", "IfMatch", "jobid", "JobId", "job_id", "host"]
SMUGGLED += ["BATCH_ENDPOINT", "Authorization", "token", "api-version", "ifModifiedSince ", ""]


def schema_can_say(name: str, value: Any) -> bool:
    """False for the rules JSON Schema cannot express the parser's way (see the module docstring)."""
    if name in DATE_FIELDS and isinstance(value, str):
        return False  # dates are checked by parsing; the schema only bounds their length
    if name == "timeOut" and integral(value):
        return False
    # jsonschema applies patterns with Python's re.search, where `$` also matches before a final "\n".
    return not (
        isinstance(value, str) and value.endswith("\n") and name in ("jobId", "clientRequestId", *ETAG_FIELDS)
    )


@st.composite
def mutations(draw: st.DrawFn) -> Mutation:
    data = dict(draw(valid_requests()).data)
    spell = draw(spellings)
    kind = draw(st.sampled_from(["type", "pattern", "twice", "unknown", "missing"]))
    if kind == "twice":
        name = draw(st.sampled_from(list(data)))
        again = draw(st.sampled_from([data[name], None, "other", 1]))
        text = spell(data).decode().rstrip()
        key = (
            json.dumps(name)
            if draw(st.booleans())
            else json.dumps(name, ensure_ascii=False).replace(name[-1], f"\\u{ord(name[-1]):04x}")
        )  # the same key, spelt with an escape
        raw = f"{text[:-1]}, {key}: {json.dumps(again)}}}".encode()
        return Mutation(kind, raw, name, None)
    if kind == "unknown":
        key = draw(
            st.sampled_from(SMUGGLED)
            | st.text(max_size=100).filter(lambda text: text not in FIELDS)
            | any_text.filter(lambda text: text not in FIELDS)
        )
        data[key] = draw(st.sampled_from(["https://evil.example", None, 1, True]) | valid_json_values)
        return Mutation(kind, spell(data), json.dumps(key[:64])[1:-1], data)
    if kind == "missing":
        if draw(st.booleans()):
            del data["jobId"]
        else:
            data["jobId"] = None
        return Mutation(kind, spell(data), "jobId", data)
    name = draw(st.sampled_from(FIELDS if kind == "type" else list(PATTERN_BREAKERS)))
    value = draw(WRONG_TYPES[name] if kind == "type" else PATTERN_BREAKERS[name])
    data[name] = value
    return Mutation(kind, spell(data), name, data, schema_can_say(name, value))


@FUZZ
@given(mutation=mutations())
# Bugs found while writing this, kept as explicit examples: email.utils reads HTTP-date years 0000-0068 as
# 2000-2068 (and 0070-0099 as 1970-1999), and `\d` took non-ASCII digits: both were accepted as dates.
@example(
    Mutation(
        "pattern",
        b'{"jobId": "x", "ifModifiedSince": "Mon, 01 Jan 0001 00:00:00 GMT"}',
        "ifModifiedSince",
        None,
    )
)
@example(
    Mutation(
        "pattern",
        '{"jobId": "x", "ifUnmodifiedSince": "Sat, \u0662\u0668 Nov 2026 10:00:00 GMT"}'.encode(),
        "ifUnmodifiedSince",
        None,
    )
)
def test_one_wrong_field_is_refused_naming_it(mutation: Mutation) -> None:
    """A wrong type, a value outside its rule, a repeated or unknown key: refused, and the field is named."""
    error = refused(mutation.raw)
    assert mutation.names in error.description, f"{mutation.kind}: {error.description!r}"


@FUZZ
@given(
    data=st.one_of(
        valid_requests().map(lambda request: request.data),
        mutations().filter(lambda m: m.data is not None and m.schema_can_say).map(lambda m: m.data),
        contract_shaped,
    )
)
def test_schema_and_parser_agree_where_the_schema_can_say(data: dict[str, Any]) -> None:
    """A producer validating with the published schema gets the parser's answer, apart from the
    documented differences: repeated keys, NaN/Infinity and a byte order mark (not JSON objects),
    dates (parsed, not matched), 5.0 and 1e3 as timeOut (integers to JSON Schema), a final newline in a
    pattern field (jsonschema uses Python's re.search) and the BATCH_ACCOUNTS list (a setting)."""
    if any(not schema_can_say(name, value) for name, value in data.items()):
        return
    by_schema = SCHEMA.is_valid(data)
    by_parser = isinstance(outcome(json.dumps(data).encode()), DeletionRequest)
    assert by_schema == by_parser, f"schema says valid={by_schema}, parser says {by_parser}"
