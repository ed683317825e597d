"""The control API under ``/_emulator/``: seed jobs, inject faults, read the request log.

No auth, JSON in and out, never written to the request log. Errors: ``{"error": "<why>"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from emulators._http import Request, Response
from emulators.batch._faults import parse_fault
from emulators.batch._model import JOB_ID, STATES, Job, new_job

if TYPE_CHECKING:
    from emulators.batch._app import BatchEmulator

_SEED_KEYS = frozenset(
    {"id", "ids", "state", "eTag", "lastModified", "creationTime", "deleteDelayMs", "deleteStuck"}
)


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _body(request: Request) -> Any:
    try:
        return json.loads(request.body) if request.body.strip() else {}
    except ValueError:
        raise ControlError("the body is not JSON") from None


def _object(request: Request) -> dict[str, Any]:
    body = _body(request)
    if not isinstance(body, dict):
        raise ControlError("the body must be a JSON object")
    return body


def _timestamp(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ControlError(f"{name} must be an RFC 3339 date-time with an offset")
    return moment


def _seed(emulator: BatchEmulator, job_id: Any, spec: dict[str, Any]) -> Job:
    """Create or replace a job exactly as described; its state stays until something changes it."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise ControlError(f"invalid job id {job_id!r}: must match {JOB_ID.pattern}")
    state = spec.get("state", "active")
    if state not in STATES:
        raise ControlError(f"state must be one of {sorted(STATES)}")
    properties = {k: v for k, v in spec.items() if k not in _SEED_KEYS}
    job = new_job(job_id, state, properties)
    if "lastModified" in spec:
        job.touch(_timestamp(spec["lastModified"], "lastModified"))
    if "creationTime" in spec:
        job.creation_time = _timestamp(spec["creationTime"], "creationTime")
    if "eTag" in spec:
        if not isinstance(spec["eTag"], str) or not spec["eTag"]:
            raise ControlError("eTag must be a non-empty string")
        job.etag = spec["eTag"]
    if "deleteDelayMs" in spec:
        delay = spec["deleteDelayMs"]
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise ControlError("deleteDelayMs must be a non-negative integer (milliseconds in deleting)")
        job.delete_delay_ms = delay
        if state == "deleting":  # seeded mid-deletion: gone that long from now
            job.remove_at = time.monotonic() + delay / 1000
    if "deleteStuck" in spec:
        if not isinstance(spec["deleteStuck"], bool):
            raise ControlError("deleteStuck must be a boolean (true: a deletion never finishes)")
        job.delete_stuck = spec["deleteStuck"]
    emulator.store.put(job)
    return job


def _post_jobs(emulator: BatchEmulator, request: Request) -> Response:
    spec = _object(request)
    base = emulator.base_url
    if "ids" in spec:
        ids = spec["ids"]
        if "id" in spec or not isinstance(ids, list):
            raise ControlError('give either "id" or a list "ids"')
        jobs = [_seed(emulator, job_id, spec) for job_id in ids]
        return Response.json([job.to_json(base) for job in jobs])
    if "id" not in spec:
        raise ControlError('"id" (or "ids") is required')
    return Response.json(_seed(emulator, spec["id"], spec).to_json(base))


def _post_config(emulator: BatchEmulator, request: Request) -> Response:
    try:
        emulator.config.merge(_object(request))
    except ValueError as error:
        raise ControlError(str(error)) from None
    return Response.json(emulator.config.to_json())


def _post_fault(emulator: BatchEmulator, request: Request) -> Response:
    try:
        fault = parse_fault(_body(request))
    except ValueError as error:
        raise ControlError(str(error)) from None
    emulator.faults.add(fault)
    return Response.json({"id": fault.id})


def _get_job(emulator: BatchEmulator, request: Request) -> Response:
    job_id = request.segments[2]
    job = emulator.store.get(job_id)
    if job is None:
        raise ControlError(f"no job {job_id!r}", 404)
    return Response.json(job.to_json(emulator.base_url))


def _health(emulator: BatchEmulator, request: Request) -> Response:
    return Response.json({"status": "ok"})


def _list_jobs(emulator: BatchEmulator, request: Request) -> Response:
    return Response.json([job.to_json(emulator.base_url) for job in emulator.store.all()])


def _list_faults(emulator: BatchEmulator, request: Request) -> Response:
    return Response.json(emulator.faults.to_json())


def _list_requests(emulator: BatchEmulator, request: Request) -> Response:
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query["limit"]) if "limit" in request.query else None
    except ValueError:
        raise ControlError("since and limit must be integers") from None
    return Response.json(emulator.requests.to_json(since, limit))


def _get_config(emulator: BatchEmulator, request: Request) -> Response:
    return Response.json(emulator.config.to_json())


def _stats(emulator: BatchEmulator, request: Request) -> Response:
    return Response.json(emulator.stats())


def _reset(emulator: BatchEmulator, request: Request) -> Response:
    emulator.reset()
    return Response.json({"status": "reset"})


def _clear_faults(emulator: BatchEmulator, request: Request) -> Response:
    emulator.faults.clear()
    return Response.json({"status": "cleared"})


def _clear_requests(emulator: BatchEmulator, request: Request) -> Response:
    emulator.requests.clear()
    return Response.json({"status": "cleared"})


_Route = Callable[["BatchEmulator", Request], Response]
# (method, path below /_emulator/ with "*" for a job id) -> handler
_ROUTES: dict[tuple[str, str], _Route] = {
    ("GET", "health"): _health,
    ("POST", "reset"): _reset,
    ("POST", "jobs"): _post_jobs,
    ("GET", "jobs"): _list_jobs,
    ("GET", "jobs/*"): _get_job,
    ("POST", "faults"): _post_fault,
    ("GET", "faults"): _list_faults,
    ("DELETE", "faults"): _clear_faults,
    ("GET", "requests"): _list_requests,
    ("DELETE", "requests"): _clear_requests,
    ("GET", "config"): _get_config,
    ("POST", "config"): _post_config,
    ("GET", "stats"): _stats,
}


def handle_control(emulator: BatchEmulator, request: Request) -> Response:
    parts = request.segments[1:]
    key = "jobs/*" if len(parts) == 2 and parts[0] == "jobs" else "/".join(parts)
    route = _ROUTES.get((request.method, key))
    if route is None:
        return Response.json({"error": f"no control route {request.method} {request.path}"}, 404)
    try:
        return route(emulator, request)
    except ControlError as error:
        return Response.json({"error": str(error)}, error.status)
