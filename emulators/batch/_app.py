"""The Batch emulator's request handler: control API, request log, faults, then the data plane."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from emulators import canary
from emulators._http import Request, Response
from emulators.batch._control import handle_control
from emulators.batch._dataplane import Context, DataPlane, check_api_version
from emulators.batch._errors import BatchError, new_request_id
from emulators.batch._faults import Fault, Faults
from emulators.batch._model import Config, JobStore
from emulators.batch._requestlog import LOG_LIMIT, Entry, RequestLog

log = logging.getLogger("emulators.batch")


class BatchEmulator:
    """All state of one emulator process, and its ``handle`` coroutine."""

    def __init__(self, base_url: str, defaults: Config, *, log_limit: int = LOG_LIMIT) -> None:
        self.base_url = base_url
        self.defaults = defaults
        self.config = Config(**defaults.to_json())
        self.store = JobStore()
        self.faults = Faults()
        self.requests = RequestLog(log_limit)
        self.status_counts: Counter[str] = Counter()
        self.dataplane = DataPlane(base_url, self.store, self.config)
        self._canary = canary.current()

    def reset(self) -> None:
        self.config.merge(self.defaults.to_json())
        self.store.clear()
        self.faults.clear()
        self.requests.clear()
        self.status_counts.clear()

    async def handle(self, request: Request) -> Response:
        if request.segments[:1] == ("_emulator",):
            response = handle_control(self, request)
            if self._canary is not None:
                self._watch_control(self._canary, request, response)
            return response
        if self._canary is not None:
            self._watch_dataplane(self._canary, request)
        return await self._handle_dataplane(request)

    def _watch_dataplane(self, token_canary: str, request: Request) -> None:
        """The token belongs in ``Authorization`` and nowhere else in a request."""
        part = canary.request_part(
            token_canary, request.target, request.headers, request.body, skip="authorization"
        )
        if part is not None:
            canary.report(f"Batch emulator: data-plane {request.method} {request.path}: canary in its {part}")

    def _watch_control(self, token_canary: str, request: Request, response: Response) -> None:
        """Tests never hand the control API a token, and its answers (the request log above all)
        must never show one."""
        part = canary.request_part(token_canary, request.target, request.headers, request.body)
        if part is not None:
            canary.report(f"Batch emulator: control {request.method} {request.path}: canary in its {part}")
        if token_canary.encode() in response.body:
            canary.report(f"Batch emulator: the answer to control {request.method} {request.path}")

    async def _handle_dataplane(self, request: Request) -> Response:
        entry = self.requests.add(request)
        started = time.perf_counter()
        context = Context(new_request_id())
        fault = self.faults.take(request)
        delay = self.config.latencyMs / 1000
        if fault is not None:
            entry.fault_id = fault.id
            delay += fault.latency
        if fault is not None and fault.answers:
            response = self._faulted(request, context, entry, fault)
            response.delay = delay
        else:
            if delay > 0:
                await asyncio.sleep(delay)
            response = self._process(request, context, entry)
        status = None if response.drop else response.status
        entry.status = status
        self.status_counts["dropped" if status is None else str(status)] += 1
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s -> %s (%.1f ms%s)",
                request.method,
                request.path,
                "dropped" if status is None else status,
                (time.perf_counter() - started) * 1000,
                f", {fault.id}" if fault else "",
            )
        return response

    def _faulted(self, request: Request, context: Context, entry: Entry, fault: Fault) -> Response:
        if fault.apply:
            # "it succeeded but the answer was lost": the real operation happens, its answer does not
            self._process(request, context, entry)
        client_request_id = None
        if request.headers.get("return-client-request-id", "").lower() == "true":
            client_request_id = request.headers.get("client-request-id")
        return fault.response(self.base_url, context.request_id, client_request_id)

    def _process(self, request: Request, context: Context, entry: Entry) -> Response:
        try:
            entry.token_claims = self.dataplane.tokens.check(request.headers.get("authorization"))
            check_api_version(request.query)
            return self.dataplane.process(request, context)
        except BatchError as error:
            return error.response(self.base_url, context.request_id, context.client_request_id)

    def stats(self) -> dict[str, Any]:
        return {"requests": sum(self.status_counts.values()), "byStatus": dict(self.status_counts)}
