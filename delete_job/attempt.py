"""One Batch request inside an invocation's deadline: a token, then the request, under one timer.

The DELETE (`delete_job.processor`) and the verification's GET (`delete_job.verification`) both go through
`bounded_attempt`, so both tell a slow token request apart from a slow Batch and never outlive
INVOCATION_DEADLINE (contract section 3, "A deadline, not the host's timeout").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from delete_job.decision import Answer
from shared.batch_client import BatchResponse
from shared.batch_errors import BatchTransportError
from shared.identity import TokenUnavailableError

__all__ = ["bounded_attempt"]


class _Counts(Protocol):
    attempts: int


async def bounded_attempt(
    send: Callable[[], Awaitable[BatchResponse]],
    *,
    token: Callable[[], Awaitable[str]] | None,
    left: float,
    result: _Counts,
) -> Answer:
    """A token (cached, or one request shared with every caller), then ``send()``, both cut off after
    ``left`` seconds (one timer: this is the hot path). A failure comes back as the answer."""
    asking_batch = False
    try:
        async with asyncio.timeout(max(left, 0.0)) as limit:
            if token is not None:
                await token()  # so that a wait for the token is told apart from Batch's
            asking_batch = True
            result.attempts += 1
            return await send()
    except (BatchTransportError, TokenUnavailableError) as exc:
        return exc
    except TimeoutError:
        if not limit.expired():
            raise
        if not asking_batch:
            return TokenUnavailableError(
                f"the token request did not finish in the {left:.1f} s left by INVOCATION_DEADLINE"
            )
        return BatchTransportError("timeout", f"no answer in the {left:.1f} s left by INVOCATION_DEADLINE")
