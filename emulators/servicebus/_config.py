"""Queue declarations: ``--queue NAME[:key=value,...]`` and ``--config FILE.json``, validated in one place.

Property names and meanings follow Service Bus's queue description (seconds instead of ISO durations):

| key | default | meaning |
|---|---|---|
| ``lockDuration`` | 60 | peek-lock duration in seconds, at most 300 (fractions allowed, e.g. 1.5) |
| ``maxDeliveryCount`` | 10 | deliveries before the broker dead-letters (``MaxDeliveryCountExceeded``) |
| ``forwardDeadLetteredMessagesTo`` | none | another declared queue that receives this queue's dead letters |
| ``duplicateDetectionWindow`` | 0 (off) | seconds in which a repeated ``message_id`` is dropped |
| ``defaultMessageTimeToLive`` | none | seconds: time to live of messages sent without one; caps longer ones |

Not Service Bus properties, faults for tests: ``rejectSendRate`` (0..1, default 0) refuses each transfer a
client sends to the queue (one message, or one batch as a whole) with that probability, and stores none
of it; ``rejectSendSeed`` (an integer) makes the sequence of refusals reproducible. ``stallSendRate``
(0..1, default 0) leaves that share of transfers unanswered for good (no disposition, nothing stored): a
client's send hangs until its own timeout, as against a namespace that stopped answering. See ``_broker``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "QueueSettings", "load_config_file", "parse_queue_spec", "validate"]

# Azure: "The maximum value for LockDuration is 5 minutes; the default value is 1 minute"
# (Microsoft.ServiceBus/namespaces/queues template reference, lockDuration). Shorter locks than Azure
# allows (e.g. 1.5 s) are accepted here so that tests of lock expiry stay quick.
_DEFAULT_LOCK_DURATION, _MAX_LOCK_DURATION = 60.0, 300.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,259}")


class ConfigError(ValueError):
    """A queue declaration that cannot be honoured; the message names the queue and the key."""


@dataclass(frozen=True)
class QueueSettings:
    """One declared queue. Names are matched case-insensitively, as Service Bus does."""

    name: str
    lock_duration: float = 60.0
    max_delivery_count: int = 10
    forward_dead_lettered_messages_to: str | None = None
    duplicate_detection_window: float = 0.0
    default_message_time_to_live: float | None = None
    reject_send_rate: float = 0.0
    reject_send_seed: int | None = None
    stall_send_rate: float = 0.0


def _positive_seconds(name: str, key: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"queue {name!r}: {key} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigError(f"queue {name!r}: {key} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return seconds


def _lock_duration(name: str, value: Any) -> float:
    seconds = _positive_seconds(name, "lockDuration", value)
    if seconds > _MAX_LOCK_DURATION:
        raise ConfigError(
            f"queue {name!r}: lockDuration must be at most {_MAX_LOCK_DURATION:g} s, not {value!r}"
        )
    return seconds


def _from_mapping(entry: Mapping[str, Any]) -> QueueSettings:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"queue name {name!r} must match {_NAME.pattern}")
    unknown = set(entry) - {
        "name",
        "lockDuration",
        "maxDeliveryCount",
        "forwardDeadLetteredMessagesTo",
        "duplicateDetectionWindow",
        "defaultMessageTimeToLive",
        "rejectSendRate",
        "rejectSendSeed",
        "stallSendRate",
    }
    if unknown:
        raise ConfigError(f"queue {name!r}: unknown properties {sorted(unknown)}")
    max_delivery_count = entry.get("maxDeliveryCount", 10)
    if (
        isinstance(max_delivery_count, bool)
        or not isinstance(max_delivery_count, int)
        or max_delivery_count < 1
    ):
        raise ConfigError(f"queue {name!r}: maxDeliveryCount must be an integer >= 1")
    forward = entry.get("forwardDeadLetteredMessagesTo")
    if forward is not None and (not isinstance(forward, str) or not forward):
        raise ConfigError(f"queue {name!r}: forwardDeadLetteredMessagesTo must be a queue name")
    ttl = entry.get("defaultMessageTimeToLive")
    reject_rate = entry.get("rejectSendRate", 0)
    if (
        isinstance(reject_rate, bool)
        or not isinstance(reject_rate, int | float)
        or not 0 <= reject_rate <= 1  # NaN fails this too
    ):
        raise ConfigError(f"queue {name!r}: rejectSendRate must be a probability from 0 to 1")
    stall_rate = entry.get("stallSendRate", 0)
    if isinstance(stall_rate, bool) or not isinstance(stall_rate, int | float) or not 0 <= stall_rate <= 1:
        raise ConfigError(f"queue {name!r}: stallSendRate must be a probability from 0 to 1")
    reject_seed = entry.get("rejectSendSeed")
    if reject_seed is not None and (isinstance(reject_seed, bool) or not isinstance(reject_seed, int)):
        raise ConfigError(f"queue {name!r}: rejectSendSeed must be an integer")
    return QueueSettings(
        name=name,
        lock_duration=_lock_duration(name, entry.get("lockDuration", _DEFAULT_LOCK_DURATION)),
        max_delivery_count=max_delivery_count,
        forward_dead_lettered_messages_to=forward,
        duplicate_detection_window=_positive_seconds(
            name, "duplicateDetectionWindow", entry.get("duplicateDetectionWindow", 0), allow_zero=True
        ),
        default_message_time_to_live=(
            None if ttl is None else _positive_seconds(name, "defaultMessageTimeToLive", ttl)
        ),
        reject_send_rate=float(reject_rate),
        reject_send_seed=reject_seed,
        stall_send_rate=float(stall_rate),
    )


def _scalar(text: str) -> Any:
    """``key=value`` values from the command line: numbers become numbers, the rest stays text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_queue_spec(spec: str) -> QueueSettings:
    """``orders`` or ``orders:lockDuration=1.5,maxDeliveryCount=3`` -> ``QueueSettings``."""
    name, _, options = spec.partition(":")
    entry: dict[str, Any] = {"name": name}
    for option in filter(None, options.split(",")):
        key, equals, value = option.partition("=")
        if not equals:
            raise ConfigError(f"queue {name!r}: option {option!r} is not key=value")
        entry[key.strip()] = _scalar(value.strip())
    return _from_mapping(entry)


def load_config_file(path: str | Path) -> list[QueueSettings]:
    """``{"queues": [{"name": ..., "lockDuration": ...}, ...]}`` -> settings, in file order."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    queues = document.get("queues") if isinstance(document, dict) else None
    if not isinstance(queues, list) or not all(isinstance(entry, dict) for entry in queues):
        raise ConfigError(f'{path}: expected {{"queues": [{{"name": ...}}, ...]}}')
    return [_from_mapping(entry) for entry in queues]


def validate(queues: Iterable[QueueSettings]) -> list[QueueSettings]:
    """Names unique (case-insensitively); forwarding targets declared and never the queue itself."""
    result = list(queues)
    seen: set[str] = set()
    for queue in result:
        key = queue.name.lower()
        if key in seen:
            raise ConfigError(f"queue {queue.name!r} is declared twice")
        seen.add(key)
    for queue in result:
        target = queue.forward_dead_lettered_messages_to
        if target is None:
            continue
        if target.lower() == queue.name.lower():
            raise ConfigError(f"queue {queue.name!r} cannot forward its dead letters to itself")
        if target.lower() not in seen:
            raise ConfigError(f"queue {queue.name!r} forwards dead letters to undeclared queue {target!r}")
    return result
