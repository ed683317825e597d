"""Which successful invocations export their spans and record (shared/telemetry.py decides when an
invocation ends; a failure always does). Azure Monitor's samplers, applied to successes only:
``microsoft.rate_limited`` (about N a second), ``microsoft.fixed_percentage`` (a ratio), ``always_on``."""

from __future__ import annotations

import math
import random
import threading
import time

from shared.settings import SuccessSampling

__all__ = ["SuccessSampler"]

_ADAPTATION_NS = 1e9  # the rate-limited window's adaptation time
_INVERSE_ADAPTATION_NS = 1 / _ADAPTATION_NS


class _Rate:
    """The share of successful invocations to keep so that about ``per_second`` are exported: Azure
    Monitor's rate-limited sampling (azure-monitor-opentelemetry-exporter,
    `export/trace/_rate_limited_sampling.py` `RateLimitedSamplingPercentage`): an exponentially decaying
    window of how many came and over how long, and the percentage rounded down to 100 / a whole number
    so each kept item stands for a whole number of items (its ``itemCount``). Two differences: the
    window adapts over 1 s, not 0.1 s, and starts as if idle for that long, so a burst of up to
    ``per_second`` successes (an instance's first messages, a quiet queue's) is exported whole."""

    __slots__ = ("_count", "_last", "_lock", "_nanoseconds", "_per_nanosecond")

    def __init__(self, per_second: float) -> None:
        self._per_nanosecond = per_second * 1e-9
        self._count = 0.0
        self._nanoseconds = _ADAPTATION_NS
        self._last = time.monotonic_ns()
        self._lock = threading.Lock()

    def percentage(self) -> float:
        now = time.monotonic_ns()
        with self._lock:
            delta = now - self._last
            if delta > 0:
                decay = math.exp(-delta * _INVERSE_ADAPTATION_NS)
                self._count = self._count * decay + 1
                self._nanoseconds = self._nanoseconds * decay + delta
                self._last = now
            else:
                self._count += 1
            probability = self._nanoseconds * self._per_nanosecond / self._count if self._count else 1.0
        return _whole_item_count(100.0 * min(probability, 1.0))


def _whole_item_count(percentage: float) -> float:
    if percentage <= 0.0:
        return 0.0
    return 100.0 / math.ceil(100.0 / percentage - 1e-9)


class SuccessSampler:
    """Whether a successful invocation is exported, and the sample rate its spans carry."""

    __slots__ = ("_fixed", "_rate")

    def __init__(self, sampling: SuccessSampling | None) -> None:
        self._rate: _Rate | None = None
        self._fixed = 100.0
        if sampling is None or sampling.kind == "always_on":
            return
        if sampling.kind == "microsoft.rate_limited":
            self._rate = _Rate(sampling.value)
        else:  # microsoft.fixed_percentage
            self._fixed = _whole_item_count(100.0 * sampling.value)

    def keep(self) -> float | None:
        """The percentage this success is kept at, or None when it is sampled away."""
        percentage = self._rate.percentage() if self._rate is not None else self._fixed
        if percentage >= 100.0:
            return 100.0
        return percentage if random.random() * 100.0 < percentage else None  # noqa: S311 - not a secret
