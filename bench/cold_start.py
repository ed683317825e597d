"""Section 4: cold start. A fresh interpreter imports function_app (settings pointing at the emulators),
indexes it as the host does (``app.get_functions()``, then each function's user function), and completes
its first message through the blueprint function, called with an ``azure.functions.ServiceBusMessage``
filled as ``emulators.host`` fills one. Next to it, interleaved, a fresh interpreter that only imports what
that path cannot avoid: azure.functions, azure-identity's aio ManagedIdentityCredential and the HTTP client
libraries BatchClient uses (``HTTP_CLIENT_LIBRARIES``: change it there when the transport changes; the
report names what the function path really imported, and flags the list when it is stale).

Times are taken inside the child, from its first statement, on the wall clock and as the child's CPU
time (less sensitive to other processes on a busy machine; the wall clock also counts the token and
DELETE round trips). The interpreter's own start-up, the same for both, is in the whole process's time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bench.measure import Services, Size, app_env, child_env, median, run_child, telemetry_env

__all__ = ["HTTP_CLIENT_LIBRARIES", "ColdFigure", "measure_cold_start"]

# What shared/batch_client.py sends its requests with: the one list to edit when that changes.
HTTP_CLIENT_LIBRARIES: tuple[str, ...] = ("httpx", "aiohttp")
# What telemetry on cannot avoid (shared/telemetry.py): the Azure Monitor exporter and the OpenTelemetry
# SDK parts, the lightest set-up Microsoft documents (the azure-monitor-opentelemetry distro imports these
# and its instrumentations too), and azure-identity's sync credential the exporters authenticate with.
TELEMETRY_LIBRARIES: tuple[str, ...] = (
    "azure.monitor.opentelemetry.exporter",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk._logs",
    "opentelemetry.sdk.metrics",
    "azure.identity",
)
# Looked for in the cold function process's sys.modules after its first message.
_HTTP_CANDIDATES = ("aiohttp", "httpx", "httpx_aiohttp", "httpcore", "h11", "anyio", "requests", "urllib3")

_PRELUDE = """
import time
_t0, _c0 = time.perf_counter(), time.process_time()
"""

_FUNCTION = (
    _PRELUDE
    + """
import asyncio, json, logging, sys, uuid
from datetime import datetime, timedelta, timezone
import function_app
_t_import, _c_import = time.perf_counter(), time.process_time()
functions = function_app.app.get_functions()
users = [f.get_user_function() for f in functions]
_t_index, _c_index = time.perf_counter(), time.process_time()
from azure.functions.servicebus import ServiceBusMessage
outcomes = []
class _Outcome(logging.Handler):
    def emit(self, record):
        outcomes.append(getattr(record, "outcome", None))
logging.getLogger("delete_job").addHandler(_Outcome())
logging.getLogger("delete_job").setLevel(logging.INFO)
now = datetime.now(timezone.utc)
message_id = uuid.uuid4().hex
lock_token = str(uuid.uuid4())
metadata = {
    "MessageId": message_id, "DeliveryCount": 1, "ContentType": "application/json",
    "CorrelationId": None, "EnqueuedTimeUtc": now, "ExpiresAtUtc": now + timedelta(days=14),
    "LockedUntil": now + timedelta(seconds=60), "LockToken": lock_token, "SequenceNumber": 1,
    "Subject": None, "ApplicationProperties": {}, "UserProperties": {},
}
message = ServiceBusMessage(
    body=b'{"jobId": "cold-start-1"}', trigger_metadata=metadata, application_properties={},
    user_properties={}, content_type="application/json", correlation_id=None, delivery_count=1,
    enqueued_sequence_number=None, enqueued_time_utc=now, expires_at_utc=now + timedelta(days=14),
    label=None, locked_until=now + timedelta(seconds=60), lock_token=lock_token, message_id=message_id,
    partition_key=None, reply_to=None, reply_to_session_id=None, scheduled_enqueue_time_utc=None,
    sequence_number=1, session_id=None, state=0, subject=None, time_to_live=timedelta(days=14), to=None,
)
[function] = users
asyncio.run(function(message))
_t_done, _c_done = time.perf_counter(), time.process_time()
print(json.dumps({
    "import": [_t_import - _t0, _c_import - _c0],
    "index": [_t_index - _t_import, _c_index - _c_import],
    "first": [_t_done - _t_index, _c_done - _c_index],
    "total": [_t_done - _t0, _c_done - _c0],
    "outcomes": outcomes,
    "servicebus": sorted(m for m in sys.modules if m.split(".")[:2] == ["azure", "servicebus"]),
    "http": [m for m in CANDIDATES if m in sys.modules],
}))
"""
)

_LIBRARIES = (
    _PRELUDE
    + """
import importlib, json
import azure.functions
from azure.identity.aio import ManagedIdentityCredential
for name in LIBRARIES:
    importlib.import_module(name)
_t_done, _c_done = time.perf_counter(), time.process_time()
import sys
http = [m for m in CANDIDATES if m in sys.modules]
print(json.dumps({"total": [_t_done - _t0, _c_done - _c0], "http": http}))
"""
)


@dataclass(frozen=True)
class ColdFigure:
    runs: int
    function_ms: float  # import + index + first message, inside the child
    function_cpu_ms: float  # ... its CPU time
    import_ms: tuple[float, float]  # (wall, CPU) of each step
    index_ms: tuple[float, float]
    first_message_ms: tuple[float, float]
    libraries_ms: float  # the unavoidable imports, inside the child
    libraries_cpu_ms: float
    function_process_ms: float  # spawn to exit, as the parent saw it
    libraries_process_ms: float
    servicebus_modules: list[str]
    http_imported: list[str]  # HTTP libraries in the function process after its first message
    libraries_http: list[str]  # ... and in the libraries-only process
    libraries: tuple[str, ...]
    # The same with telemetry on (APPLICATIONINSIGHTS_CONNECTION_STRING set), against the unavoidable
    # imports plus TELEMETRY_LIBRARIES.
    telemetry_ms: float = 0.0
    telemetry_cpu_ms: float = 0.0
    telemetry_libraries_ms: float = 0.0
    telemetry_libraries_cpu_ms: float = 0.0
    telemetry_process_ms: float = 0.0
    telemetry_libraries_process_ms: float = 0.0

    @property
    def telemetry_ratio(self) -> float:
        return self.telemetry_ms / self.telemetry_libraries_ms

    @property
    def telemetry_cpu_ratio(self) -> float:
        return self.telemetry_cpu_ms / self.telemetry_libraries_cpu_ms

    @property
    def ratio(self) -> float:
        return self.function_ms / self.libraries_ms

    @property
    def cpu_ratio(self) -> float:
        return self.function_cpu_ms / self.libraries_cpu_ms

    @property
    def libraries_stale(self) -> bool:
        """The list no longer matches what the function path imports (one side has a library the other
        has not): edit HTTP_CLIENT_LIBRARIES."""
        return sorted(self.libraries_http) != sorted(self.http_imported)


def _timed(code: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    [line] = run_child(["-c", code], env, timeout=120, name="a cold-start child")
    return line, time.perf_counter() - started


def _ms(runs: list[tuple[dict[str, Any], float]], step: str, clock: int) -> float:
    """The median of one step's wall (clock 0) or CPU (clock 1) time, in ms."""
    return median([line[step][clock] * 1000 for line, _ in runs])


def measure_cold_start(s: Services, size: Size) -> ColdFigure:
    function_code = _FUNCTION.replace("CANDIDATES", repr(_HTTP_CANDIDATES))
    libraries_code = _LIBRARIES.replace("LIBRARIES", repr(HTTP_CLIENT_LIBRARIES)).replace(
        "CANDIDATES", repr(_HTTP_CANDIDATES)
    )
    telemetry_libraries_code = libraries_code.replace(
        "for name in", f"for name in {TELEMETRY_LIBRARIES!r} + "
    )
    env = child_env(app_env(s))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the bytecode cache is part of a deployed app
    # The telemetry-on cold process uploads to the ingestion stand-in (measure.telemetry_env): the import
    # and set-up are what is timed; its exit, which flushes the exporters, counts in the process's wall time.
    on_env = {**env, **telemetry_env(s)}
    connection_string = on_env.pop("BENCH_APPLICATIONINSIGHTS_CONNECTION_STRING")
    on_env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection_string
    # One untimed run of each first: a fresh clone has no bytecode cache yet; "cold" is a new process.
    kinds = [
        (function_code, env),
        (libraries_code, env),
        (function_code, on_env),
        (telemetry_libraries_code, env),
    ]
    for code, kind_env in kinds:
        _timed(code, kind_env)
    runs: list[list[tuple[dict[str, Any], float]]] = [[] for _ in kinds]
    for _ in range(size.cold_runs):  # interleaved, so drift hits all alike
        for code_runs, (code, kind_env) in zip(runs, kinds, strict=True):
            code_runs.append(_timed(code, kind_env))
    functions, libraries, telemetry, telemetry_libraries = runs
    for line, _ in functions + telemetry:
        if line["outcomes"] != ["Deleted"]:
            raise RuntimeError(f"the cold function's first message did not end in a deletion: {line}")
    last = functions[-1][0]
    return ColdFigure(
        runs=size.cold_runs,
        function_ms=_ms(functions, "total", 0),
        function_cpu_ms=_ms(functions, "total", 1),
        import_ms=(_ms(functions, "import", 0), _ms(functions, "import", 1)),
        index_ms=(_ms(functions, "index", 0), _ms(functions, "index", 1)),
        first_message_ms=(_ms(functions, "first", 0), _ms(functions, "first", 1)),
        libraries_ms=_ms(libraries, "total", 0),
        libraries_cpu_ms=_ms(libraries, "total", 1),
        function_process_ms=median([wall * 1000 for _, wall in functions]),
        libraries_process_ms=median([wall * 1000 for _, wall in libraries]),
        servicebus_modules=sorted({m for x, _ in functions for m in x["servicebus"]}),
        http_imported=list(last["http"]),
        libraries_http=list(libraries[-1][0]["http"]),
        libraries=HTTP_CLIENT_LIBRARIES,
        telemetry_ms=_ms(telemetry, "total", 0),
        telemetry_cpu_ms=_ms(telemetry, "total", 1),
        telemetry_libraries_ms=_ms(telemetry_libraries, "total", 0),
        telemetry_libraries_cpu_ms=_ms(telemetry_libraries, "total", 1),
        telemetry_process_ms=median([wall * 1000 for _, wall in telemetry]),
        telemetry_libraries_process_ms=median([wall * 1000 for _, wall in telemetry_libraries]),
    )


def main() -> None:
    from bench.measure import SIZES, services  # noqa: PLC0415

    with services() as s:
        print(json.dumps(measure_cold_start(s, SIZES["full"]).__dict__, indent=2))


if __name__ == "__main__":
    main()
