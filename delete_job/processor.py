"""One message, start to end (contract section 3): validate, delete, decide, record, log.

I/O lives here and only here; what it means is decided by `decision`, `retry` and `records`. A failure
record or a retry copy is sent before `process()` returns, so the host completes the message only after
Service Bus took it; if the send fails, `process()` raises and the host abandons the message.

Every await is bounded by `INVOCATION_DEADLINE` (contract section 3, "A deadline, not the host's timeout"):
the host answers its own `functionTimeout` by restarting the whole worker, abandoning every message in
flight (azure-functions-host, `WebScriptHostExceptionHandler.OnTimeoutExceptionAsync`), so no invocation may
come near it. The token request and each Batch attempt get what is left of the deadline less a reserve
for the one send that may follow; a Batch attempt cut off there is a timeout (transient), and when no
time is left for another attempt the message takes the delayed-retry path. A send gets all that is left;
if that is not enough it raises.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from delete_job.attempt import bounded_attempt
from delete_job.decision import Action, Answer, Outcome, decide
from delete_job.records import Received, describe_failure, failure_record, redact, retry_copy
from delete_job.request import DeletionRequest, InvalidMessageError, parse_request
from delete_job.retry import QuickRetryPolicy, delayed_retry_delay
from delete_job.verification import Verifier, is_verification
from shared.batch_client import BatchClient, BatchResponse, DeleteJobOptions
from shared.batch_errors import InvalidRequestError
from shared.identity import BatchToken, create_credential
from shared.servicebus import OutgoingMessage, QueueSender
from shared.settings import Settings
from shared.telemetry import OFF, AnyTelemetry, from_settings

__all__ = ["Processor", "Result", "one_line"]

# Of the invocation's deadline, this share (at most _MAX_SEND_RESERVE seconds) is kept for the one send
# (failure record or retry copy) that may follow the Batch attempts. With the default 120 s: Batch and the
# token get 90 s, which the quick retries' 30 s budget plus one 40 s read timeout fit into.
_SEND_RESERVE_SHARE = 0.25
_MAX_SEND_RESERVE = 30.0
# A quick retry is only made if at least this much (or a tenth of the deadline) is left for it.
_MIN_ATTEMPT_SECONDS = 5.0

TokenGetter = Callable[[], Awaitable[str]]
# Batch started deleting: contract section 6 checks later that the job is really gone.
_VERIFIED = (Outcome.DELETED, Outcome.ALREADY_DELETING)

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
    Outcome.DELETION_CONFIRMED: logging.INFO,
    Outcome.RECREATED: logging.WARNING,
    Outcome.VERIFICATION_SCHEDULED: logging.INFO,
    Outcome.DELETION_STUCK: logging.ERROR,
}


class Sender(Protocol):
    async def send(self, queue: str, message: OutgoingMessage, *, within: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class _Budget:
    """When this invocation must be done (monotonic seconds), and when its Batch attempts must be."""

    ends: float
    batch_ends: float
    min_attempt: float

    @classmethod
    def starting(cls, started: float, deadline: float) -> _Budget:
        reserve = min(_MAX_SEND_RESERVE, deadline * _SEND_RESERVE_SHARE)
        return cls(started + deadline, started + deadline - reserve, min(_MIN_ATTEMPT_SECONDS, deadline / 10))


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

    def note(self, answer: Answer) -> None:
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
        token: TokenGetter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
        close: Callable[[], Awaitable[None]] | None = None,
        telemetry: AnyTelemetry = OFF,
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._close = close
        self._batch_client = batch_client
        self._sender = sender  # called only when something must be sent: the happy path never is
        self._token = token  # asked before each Batch attempt, so that its wait is bounded on its own
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now
        self._rand = rand
        self._policy = QuickRetryPolicy(delays=settings.quick_retry_delays)
        # Contract section 6: verification messages, with this processor's client, token and deadline.
        self._verifier = Verifier(
            batch_client=batch_client,
            token=token,
            sender=sender,
            sleep=sleep,
            monotonic=monotonic,
            now=now,
            rand=rand,
            policy=self._policy,
            deletion_queue=settings.deletion_queue,
            dead_letter_queue=settings.dead_letter_queue,
            after=settings.verify_deletion_after,
            timeout=settings.verify_deletion_timeout,
        )

    @classmethod
    def create(cls, settings: Settings, *, telemetry: AnyTelemetry | None = None) -> Processor:
        """The processor with real connections, for the running event loop: one credential and token
        cache, one Batch client per endpoint, one Service Bus sender (created only when needed)."""
        token = BatchToken(create_credential(settings))
        telemetry = telemetry or from_settings(
            settings.telemetry_connection_string,
            client_id=settings.client_id,
            accounts=settings.batch_accounts,
            queue=settings.deletion_queue,
            sampling=settings.success_sampling,
        )
        clients: dict[str, BatchClient] = {}
        senders: list[QueueSender] = []

        def batch_client(endpoint: str) -> BatchClient:
            client = clients.get(endpoint)
            if client is None:
                client = clients[endpoint] = BatchClient(
                    endpoint, token, api_version=settings.api_version, telemetry=telemetry
                )
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

        return cls(
            settings, batch_client=batch_client, sender=sender, token=token, close=close, telemetry=telemetry
        )

    async def close(self) -> None:
        """Close the connections the processor opened (tests, shutdown)."""
        if self._close is not None:
            await self._close()

    async def process(self, received: Received) -> Result:
        started = self._monotonic()
        result = Result()
        with self._telemetry.invocation(received.message_id, received.application_properties) as span:
            try:
                await self._process(received, result, started)
            except BaseException as exc:
                result.outcome = Outcome.ABANDONED
                error = f"{type(exc).__name__}: {redact(str(exc))[:500]}"
                self._log(received, result, started, error, span)
                raise
            self._log(received, result, started, None, span)
        return result

    async def _process(self, received: Received, result: Result, started: float) -> None:
        budget = _Budget.starting(started, self._settings.invocation_deadline)
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
            await self._invalid(received, result, exc.description, budget)
            return
        if is_verification(received):  # contract section 6: look, never delete
            await self._verifier.verify(
                received, request=request, endpoint=endpoint, result=result, started=started, budget=budget
            )
            return
        try:
            answer = await self._delete_with_quick_retries(
                endpoint, request, options, result, started, budget=budget
            )
        except InvalidRequestError as exc:  # the client's own last check; the model should catch it first
            await self._invalid(received, result, str(exc), budget)
            return
        verdict = decide(answer)
        result.outcome = verdict.outcome
        if verdict.action is Action.COMPLETE:
            if verdict.outcome in _VERIFIED and self._settings.verify_deletion_after > 0:
                await self._verifier.schedule_first(received, budget)
            return
        if verdict.action is Action.RECORD:
            await self._record(received, result, request, answer, verdict.outcome, budget=budget)
            return
        # RETRY or DELAY: a delayed retry copy, or the end of the schedule.
        retry_after = answer.retry_after if isinstance(answer, BatchResponse) else None
        delay = delayed_retry_delay(received.retry_attempt, self._settings.retry_delays, retry_after)
        if delay is None:
            result.outcome = Outcome.RETRIES_EXHAUSTED
            await self._record(received, result, request, answer, Outcome.RETRIES_EXHAUSTED, budget=budget)
            return
        copy = retry_copy(received=received, delay=delay, now=self._now())
        await self._send(self._settings.deletion_queue, copy, budget)

    async def _delete_with_quick_retries(
        self,
        endpoint: str,
        request: DeletionRequest,
        options: DeleteJobOptions,
        result: Result,
        started: float,
        *,
        budget: _Budget,
    ) -> Answer:
        client = self._batch_client(endpoint)
        retries = 0
        while True:
            answer = await self._attempt(client, request, options, result, budget)
            result.note(answer)
            if decide(answer).action is not Action.RETRY:
                return answer
            retry_after = answer.retry_after if isinstance(answer, BatchResponse) else None
            now = self._monotonic()
            delay = self._policy.next_delay(retries, now - started, retry_after, self._rand())
            if delay is None or now + delay + budget.min_attempt > budget.batch_ends:
                return answer  # no quick retry (or no time for one): the delayed-retry path
            await self._sleep(delay)
            retries += 1

    async def _attempt(
        self,
        client: BatchClient,
        request: DeletionRequest,
        options: DeleteJobOptions,
        result: Result,
        budget: _Budget,
    ) -> Answer:
        """One try, cut off where the invocation's Batch time ends (`delete_job.attempt`)."""
        return await bounded_attempt(
            functools.partial(client.delete_job, request.job_id, options),
            token=self._token,
            left=budget.batch_ends - self._monotonic(),
            result=result,
        )

    async def _send(self, queue: str, message: OutgoingMessage, budget: _Budget) -> None:
        """Send, with whatever time the invocation has left; raises if that is not enough."""
        await self._sender().send(queue, message, within=budget.ends - self._monotonic())

    async def _invalid(self, received: Received, result: Result, problem: str, budget: _Budget) -> None:
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
        await self._send(self._settings.dead_letter_queue, record, budget)

    async def _record(
        self,
        received: Received,
        result: Result,
        request: DeletionRequest,
        answer: Answer,
        reason: Outcome,
        *,
        budget: _Budget,
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
        await self._send(self._settings.dead_letter_queue, record, budget)

    def _log(self, received: Received, result: Result, started: float, error: str | None, span: Any) -> None:
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
        level, text = _LEVELS[result.outcome], one_line(text)
        log.log(level, text, extra=fields)
        if span is not None:  # telemetry on (shared/telemetry.py): the same record, as OpenTelemetry
            span.finish(level, text, fields)
