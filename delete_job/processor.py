"""One message, start to end (contract section 3): validate, delete, decide, record, log.

I/O lives here and only here; what it means is decided by `decision`, `retry` and `records`. A failure
record or a retry copy is sent before `process()` returns, so the host completes the message only after
Service Bus took it; if the send fails, `process()` raises and the host abandons the message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from delete_job.decision import Action, Outcome, decide
from delete_job.records import Received, describe_failure, failure_record, redact, retry_copy
from delete_job.request import DeletionRequest, InvalidMessageError, parse_request
from delete_job.retry import QuickRetryPolicy, delayed_retry_delay
from shared.batch_client import BatchClient, BatchResponse, DeleteJobOptions
from shared.batch_errors import BatchTransportError, InvalidRequestError
from shared.identity import BatchToken, create_credential
from shared.servicebus import OutgoingMessage, QueueSender
from shared.settings import Settings

__all__ = ["Processor", "Result", "one_line"]

# C0 and C1 controls, DEL and the Unicode line/paragraph separators: what a text log would split on or show.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x00``...): the message id and the error
    come from outside, and a newline in them must not forge a second line in a plain-text log."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


log = logging.getLogger("delete_job")

_LEVELS = {
    Outcome.DELETED: logging.INFO,
    Outcome.ALREADY_DELETED: logging.INFO,
    Outcome.ALREADY_DELETING: logging.INFO,
    Outcome.RETRY_SCHEDULED: logging.WARNING,
    Outcome.PRECONDITION_FAILED: logging.WARNING,
    Outcome.BATCH_REJECTED: logging.ERROR,
    Outcome.INVALID_MESSAGE: logging.ERROR,
    Outcome.RETRIES_EXHAUSTED: logging.ERROR,
    Outcome.ABANDONED: logging.ERROR,
}


class Sender(Protocol):
    async def send(self, queue: str, message: OutgoingMessage) -> None: ...


@dataclass
class Result:
    """What happened to one message: the log record's fields."""

    outcome: Outcome = Outcome.ABANDONED
    job_id: str | None = None
    account: str | None = None
    http_status: int | None = None
    batch_error_code: str | None = None
    request_id: str | None = None
    client_request_id: str | None = None
    attempts: int = 0

    def note(self, answer: BatchResponse | BatchTransportError) -> None:
        if isinstance(answer, BatchResponse):
            self.http_status = answer.status
            self.batch_error_code = answer.error_code
            self.request_id = answer.request_id
            self.client_request_id = answer.client_request_id
        else:
            self.http_status = self.batch_error_code = self.request_id = None


class Processor:
    """Processes deletion messages with one settings object, Batch clients and a queue sender."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_client: Callable[[str], BatchClient],
        sender: Callable[[], Sender],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._close = close
        self._batch_client = batch_client
        self._sender = sender  # called only when something must be sent: the happy path never is
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now
        self._rand = rand
        self._policy = QuickRetryPolicy(delays=settings.quick_retry_delays)

    @classmethod
    def create(cls, settings: Settings) -> Processor:
        """The processor with real connections, for the running event loop: one credential and token
        cache, one Batch client per endpoint, one Service Bus sender (created only when needed)."""
        token = BatchToken(create_credential(settings))
        clients: dict[str, BatchClient] = {}
        senders: list[QueueSender] = []

        def batch_client(endpoint: str) -> BatchClient:
            client = clients.get(endpoint)
            if client is None:
                client = clients[endpoint] = BatchClient(endpoint, token, api_version=settings.api_version)
            return client

        def sender() -> QueueSender:
            if not senders:
                senders.append(QueueSender(settings.service_bus, client_id=settings.client_id))
            return senders[0]

        async def close() -> None:
            for client in clients.values():
                await client.aclose()
            for queue_sender in senders:
                await queue_sender.close()
            await token.close()

        return cls(settings, batch_client=batch_client, sender=sender, close=close)

    async def close(self) -> None:
        """Close the connections the processor opened (tests, shutdown)."""
        if self._close is not None:
            await self._close()

    async def process(self, received: Received) -> Result:
        started = self._monotonic()
        result = Result()
        try:
            await self._process(received, result, started)
        except BaseException as exc:
            result.outcome = Outcome.ABANDONED
            self._log(received, result, started, f"{type(exc).__name__}: {redact(str(exc))[:500]}")
            raise
        self._log(received, result, started, None)
        return result

    async def _process(self, received: Received, result: Result, started: float) -> None:
        try:
            request = parse_request(received.body)
            result.job_id, result.account = request.job_id, request.account
            endpoint = self._settings.endpoint_for(request.account)
            if endpoint is None:
                known = ", ".join(sorted(self._settings.batch_accounts)) or "none"
                raise InvalidMessageError(
                    f"account {request.account!r} is not listed in BATCH_ACCOUNTS (listed: {known})",
                    job_id=request.job_id,
                    # the producer's text: a lone surrogate (JSON "\\udfff") cannot go to a log or a record
                    account=(request.account or "").encode("utf-8", "replace").decode("utf-8"),
                )
            options = request.options()
        except InvalidMessageError as exc:
            result.job_id, result.account = exc.job_id, exc.account
            await self._invalid(received, result, exc.description)
            return
        try:
            answer = await self._delete_with_quick_retries(endpoint, request, options, result, started)
        except InvalidRequestError as exc:  # the client's own last check; the model should catch it first
            await self._invalid(received, result, str(exc))
            return
        verdict = decide(answer)
        result.outcome = verdict.outcome
        if verdict.action is Action.COMPLETE:
            return
        if verdict.action is Action.RECORD:
            await self._record(received, result, request, answer, verdict.outcome)
            return
        retry_after = answer.retry_after if isinstance(answer, BatchResponse) else None
        delay = delayed_retry_delay(received.retry_attempt, self._settings.retry_delays, retry_after)
        if delay is None:
            result.outcome = Outcome.RETRIES_EXHAUSTED
            await self._record(received, result, request, answer, Outcome.RETRIES_EXHAUSTED)
            return
        copy = retry_copy(received=received, delay=delay, now=self._now())
        await self._sender().send(self._settings.deletion_queue, copy)

    async def _delete_with_quick_retries(
        self,
        endpoint: str,
        request: DeletionRequest,
        options: DeleteJobOptions,
        result: Result,
        started: float,
    ) -> BatchResponse | BatchTransportError:
        client = self._batch_client(endpoint)
        while True:
            result.attempts += 1
            try:
                answer: BatchResponse | BatchTransportError = await client.delete_job(request.job_id, options)
            except BatchTransportError as exc:
                answer = exc
            result.note(answer)
            if decide(answer).action is not Action.RETRY:
                return answer
            retry_after = answer.retry_after if isinstance(answer, BatchResponse) else None
            elapsed = self._monotonic() - started
            delay = self._policy.next_delay(result.attempts - 1, elapsed, retry_after, self._rand())
            if delay is None:
                return answer
            await self._sleep(delay)

    async def _invalid(self, received: Received, result: Result, problem: str) -> None:
        result.outcome = Outcome.INVALID_MESSAGE
        description = (
            f"The message is not a valid deletion request: {problem}. Nothing was sent to Batch; fix the"
            " producer (see schemas/deletion-request.schema.json) and send it again."
        )
        record = failure_record(
            reason=Outcome.INVALID_MESSAGE,
            description=description,
            received=received,
            now=self._now(),
            job_id=result.job_id,
            account=result.account,
        )
        await self._sender().send(self._settings.dead_letter_queue, record)

    async def _record(
        self,
        received: Received,
        result: Result,
        request: DeletionRequest,
        answer: BatchResponse | BatchTransportError,
        reason: Outcome,
    ) -> None:
        record = failure_record(
            reason=reason,
            description=describe_failure(reason, request.job_id, answer, received.retry_attempt),
            received=received,
            now=self._now(),
            job_id=request.job_id,
            account=request.account,
            attempts=result.attempts,
            answer=answer,
            client_request_id=request.client_request_id,
        )
        await self._sender().send(self._settings.dead_letter_queue, record)

    def _log(self, received: Received, result: Result, started: float, error: str | None) -> None:
        fields: dict[str, Any] = {
            "outcome": str(result.outcome),
            "jobId": result.job_id,
            "account": result.account,
            "httpStatus": result.http_status,
            "batchErrorCode": result.batch_error_code,
            "requestId": result.request_id,
            "clientRequestId": result.client_request_id,
            "messageId": received.message_id,
            "deliveryCount": received.delivery_count,
            "retryAttempt": received.retry_attempt,
            "attempts": result.attempts,
            "durationMs": round((self._monotonic() - started) * 1000, 1),
        }
        text = f"{result.outcome}: job {result.job_id or '?'} (message {received.message_id})"
        if result.http_status is not None:
            text += f", Batch answered {result.http_status} {result.batch_error_code or ''}".rstrip()
        if error:
            text += f"; {error}"
        log.log(_LEVELS[result.outcome], one_line(text), extra=fields)
