"""The Batch data plane: request validation and the job operations, in the order Batch checks them.

Order of checks: auth -> api-version -> route -> query and header validation -> job lookup ->
state conflicts -> preconditions (RFC 7232 section 6) -> the operation. Everything here is
synchronous and answers with a ``Response``; latency and faults are the caller's business.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from emulators._http import Request, Response
from emulators.batch._auth import TokenChecker
from emulators.batch._errors import BatchError, common_headers
from emulators.batch._model import (
    JOB_ID,
    Config,
    Job,
    JobStore,
    http_date,
    new_job,
    parse_http_date,
)

API_VERSIONS = frozenset(
    {
        "2025-06-01",
        "2024-07-01.20.0",
        "2024-02-01.19.0",
        "2023-11-01.18.0",
        "2023-05-01.17.0",
    }
)
_GUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_DATE_HEADERS = ("ocp-date", "if-modified-since", "if-unmodified-since")
_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
_READ_ONLY = frozenset(
    {
        "id",
        "url",
        "eTag",
        "lastModified",
        "creationTime",
        "state",
        "stateTransitionTime",
        "previousState",
        "previousStateTransitionTime",
        "executionInfo",
        "stats",
    }
)
# query parameters each operation accepts (names are case-sensitive here: strictness finds client bugs)
_QUERY = {
    "create": frozenset({"api-version", "timeOut"}),
    "get": frozenset({"api-version", "timeOut", "$select", "$expand"}),
    "update": frozenset({"api-version", "timeOut"}),
    "delete": frozenset({"api-version", "timeOut", "force"}),
    "terminate": frozenset({"api-version", "timeOut", "force"}),
}


class Context:
    """What the checks learned about one request, for the operation and for the answer."""

    __slots__ = ("client_request_id", "dates", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.client_request_id: str | None = None  # set only when it must be echoed
        self.dates: dict[str, datetime] = {}

    def headers(self) -> list[tuple[str, str]]:
        return common_headers(self.request_id, self.client_request_id)


def _query_error(code: str, name: str, value: str | None = None, reason: str | None = None) -> BatchError:
    values = {"QueryParameterName": name}
    if value is not None:
        values["QueryParameterValue"] = value
    if reason is not None:
        values["Reason"] = reason
    return BatchError(code, values)


def _header_error(name: str, value: str) -> BatchError:
    return BatchError("InvalidHeaderValue", {"HeaderName": name, "HeaderValue": value})


def check_api_version(query: dict[str, str]) -> None:
    version = query.get("api-version")
    if version is None:
        raise _query_error("MissingRequiredQueryParameter", "api-version")
    if version not in API_VERSIONS:
        raise _query_error(
            "InvalidQueryParameterValue",
            "api-version",
            version,
            "The specified api-version is not supported.",
        )


_ON_JOBS = {"POST": "create"}
_ON_JOB = {"GET": "get", "PUT": "update", "DELETE": "delete"}
_ON_TERMINATE = {"POST": "terminate"}


def route(request: Request) -> tuple[str, str | None]:
    """The operation and job id a request addresses; raises for unknown paths and verbs."""
    segments = request.segments
    if len(segments) == 2 and segments[0] == "jobs" and segments[1]:
        operations, job_id = _ON_JOB, segments[1]
    elif len(segments) == 1 and segments[0] == "jobs":
        operations, job_id = _ON_JOBS, None
    elif len(segments) == 3 and segments[0] == "jobs" and segments[1] and segments[2] == "terminate":
        operations, job_id = _ON_TERMINATE, segments[1]
    else:
        raise BatchError("InvalidUri")
    operation = operations.get(request.method)
    if operation is None:
        raise BatchError("UnsupportedHttpVerb", headers=[("Allow", ", ".join(operations))])
    return operation, job_id


def check_query(operation: str, query: dict[str, str]) -> None:
    allowed = _QUERY[operation]
    for name, value in query.items():
        if name not in allowed:
            raise _query_error("UnsupportedQueryParameter", name, value)
    timeout = query.get("timeOut")
    if timeout is not None:
        try:
            seconds = int(timeout)
        except ValueError:
            raise _query_error(
                "InvalidQueryParameterValue", "timeOut", timeout, "Not a valid integer."
            ) from None
        if not 1 <= seconds <= 2**31 - 1:
            raise _query_error("OutOfRangeQueryParameterValue", "timeOut", timeout, "Must be at least 1.")
    select = query.get("$select")
    if select is not None and not all(name.strip() for name in select.split(",")):
        raise _query_error("InvalidQueryParameterValue", "$select", select, "Empty property name.")
    force = query.get("force")
    if force is not None and force.lower() not in ("true", "false"):
        raise _query_error("InvalidQueryParameterValue", "force", force, "Must be true or false.")


def check_headers(headers: dict[str, str], context: Context) -> None:
    client_request_id = headers.get("client-request-id")
    if client_request_id is not None and not _GUID.fullmatch(client_request_id):
        raise _header_error("client-request-id", client_request_id)
    echo = headers.get("return-client-request-id")
    if echo is not None:
        if echo.lower() not in ("true", "false"):
            raise _header_error("return-client-request-id", echo)
        if echo.lower() == "true":
            context.client_request_id = client_request_id
    for name in _DATE_HEADERS:
        value = headers.get(name)
        if value is not None:
            parsed = parse_http_date(value)
            if parsed is None:
                raise _header_error(name, value)
            context.dates[name] = parsed


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # Batch's ETags are unquoted; quoted and weak forms are compared by their opaque value.
    candidates = (part.strip().removeprefix("W/").strip('"') for part in header.split(","))
    return etag in candidates


def _match_conditions_hold(job: Job, headers: dict[str, str], context: Context) -> bool:
    """If-Match, else If-Unmodified-Since (RFC 7232 section 6, steps 1-2)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        return _etag_matches(if_match, job.etag)
    since = context.dates.get("if-unmodified-since")
    return since is None or job.last_modified.replace(microsecond=0) <= since


def _none_match_conditions_hold(job: Job, headers: dict[str, str], context: Context) -> bool:
    """If-None-Match, else If-Modified-Since (steps 3-4; Batch documents the latter for writes too)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return not _etag_matches(if_none_match, job.etag)
    since = context.dates.get("if-modified-since")
    # HTTP dates have whole seconds: compare the job's time truncated to the second
    return since is None or job.last_modified.replace(microsecond=0) > since


def _body_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body) if request.body.strip() else None
    except ValueError:
        raise BatchError("InvalidRequestBody") from None
    if not isinstance(body, dict):
        raise BatchError("InvalidRequestBody")
    return body


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _READ_ONLY}


class DataPlane:
    """The job operations over one ``JobStore``; reads ``Config`` on every request."""

    def __init__(self, base_url: str, store: JobStore, config: Config) -> None:
        self.base_url = base_url
        self.store = store
        self.config = config
        self.tokens = TokenChecker()

    def process(self, request: Request, context: Context) -> Response:
        """Answer one data-plane request (raises ``BatchError`` for every refusal)."""
        operation, job_id = route(request)
        check_query(operation, request.query)
        check_headers(request.headers, context)
        body = _body_object(request) if operation in ("create", "update") else {}
        if job_id is None:
            return self._create(body, context)
        job = self.store.get(job_id)
        if job is None:
            if not (self.config.autoCreate and operation == "delete" and JOB_ID.fullmatch(job_id)):
                raise BatchError("JobNotFound")
            # autoCreate: as if an active job existed (never stored); benchmarks take the short cut
            if not any(name in request.headers for name in _CONDITIONS):
                return Response(202, context.headers())
            job = new_job(job_id)
        if operation == "get":
            return self._get(job, request, context)
        # Checked before preconditions (inferred): a redelivered conditional delete, whose
        # first attempt succeeded, then reads as "already deleting", not as a failed condition.
        if job.state == "deleting":
            raise BatchError("JobBeingDeleted")
        headers = request.headers
        if not (
            _match_conditions_hold(job, headers, context)
            and _none_match_conditions_hold(job, headers, context)
        ):
            raise BatchError("ConditionNotMet")
        if operation == "delete":
            return self._delete(job, context)
        if operation == "update":
            return self._update(job, body, context)
        return self._terminate(job, request, context)

    def _write_headers(self, job: Job, context: Context) -> list[tuple[str, str]]:
        headers = context.headers()
        headers += [
            ("ETag", job.etag),
            ("Last-Modified", http_date(job.last_modified)),
            ("DataServiceId", f"{self.base_url}/jobs/{job.id}"),
        ]
        return headers

    def _create(self, body: dict[str, Any], context: Context) -> Response:
        job_id = body.get("id")
        if job_id is None:
            raise BatchError("MissingRequiredProperty", {"PropertyName": "id"})
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise BatchError(
                "InvalidPropertyValue",
                {
                    "PropertyName": "id",
                    "PropertyValue": str(job_id),
                    "Reason": "Must be 1-64 letters, digits, hyphens or underscores.",
                },
            )
        if self.store.get(job_id) is not None:
            raise BatchError("JobExists")
        job = new_job(job_id, properties=_writable(body))
        self.store.put(job)
        headers = self._write_headers(job, context)
        headers.append(("Location", f"{self.base_url}/jobs/{job.id}"))
        return Response(201, headers)

    def _get(self, job: Job, request: Request, context: Context) -> Response:
        if not _match_conditions_hold(job, request.headers, context):
            raise BatchError("ConditionNotMet")
        headers = context.headers()
        headers += [("ETag", job.etag), ("Last-Modified", http_date(job.last_modified))]
        if not _none_match_conditions_hold(job, request.headers, context):
            return Response(304, headers)
        headers.append(("Content-Type", "application/json;odata=minimalmetadata"))
        body = job.to_json(self.base_url)
        select = request.query.get("$select")
        if select is not None:
            # OData $select: only the named properties (learn.microsoft.com/rest/api/batchservice/job/get,
            # "$select"). Inferred, not documented: a name that is no property selects nothing.
            names = {name.strip() for name in select.split(",")}
            body = {key: value for key, value in body.items() if key in names}
        body["odata.metadata"] = f"{self.base_url}/$metadata#jobs/@Element"
        return Response(200, headers, json.dumps(body, separators=(",", ":")).encode())

    def _delete(self, job: Job, context: Context) -> Response:
        if job.state == "terminating" and self.config.rejectDeleteWhileTerminating:
            raise BatchError("JobBeingTerminated")
        delay_ms = self.config.deleteDelayMs if job.delete_delay_ms is None else job.delete_delay_ms
        if job.delete_stuck:
            job.transition("deleting")  # and stays there: its tasks never terminate
            job.complete_at = job.remove_at = None
        elif delay_ms <= 0:
            self.store.remove(job.id)
        else:
            job.transition("deleting")
            job.complete_at = None
            job.remove_at = time.monotonic() + delay_ms / 1000
        return Response(202, context.headers())

    def _update(self, job: Job, body: dict[str, Any], context: Context) -> Response:
        if job.state == "completed":
            raise BatchError("JobCompleted")
        job.properties = _writable(body)
        job.touch()
        return Response(200, self._write_headers(job, context))

    def _terminate(self, job: Job, request: Request, context: Context) -> Response:
        if request.body.strip():
            _body_object(request)
        if job.state == "completed":
            raise BatchError("JobCompleted")
        if job.state == "terminating":
            raise BatchError("JobBeingTerminated")
        job.transition("terminating")
        delay_ms = self.config.terminateDelayMs
        if delay_ms <= 0:
            job.transition("completed")
        else:
            job.complete_at = time.monotonic() + delay_ms / 1000
        return Response(202, self._write_headers(job, context))
