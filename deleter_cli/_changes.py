"""How a replay changes the request before it is sent again (pure: no I/O).

A record says what to do: a `PreconditionFailed` one "replay with updated preconditions (or without
them)"; a stuck deletion, with `force`. `Changes` carries those edits; `apply` makes the new body, which
`replay_copy` then validates with the function's own model (delete_job.request), as `enqueue` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CANNOT_SUCCEED_UNCHANGED", "PRECONDITIONS", "ChangeError", "Changes", "apply"]

PRECONDITIONS = ("ifMatch", "ifNoneMatch", "ifModifiedSince", "ifUnmodifiedSince")
# Reasons whose request would fail the same way if sent again as it is: the request itself was refused.
# `replay --all` (or any filter) skips them; naming one with --id, or giving a corrected --body, replays it.
CANNOT_SUCCEED_UNCHANGED = frozenset({"InvalidMessage"})


class ChangeError(ValueError):
    """The changes cannot be applied to this request; `str()` says why."""


@dataclass(frozen=True)
class Changes:
    """Edits to the request: drop the preconditions, then set fields; or a whole corrected body."""

    drop_preconditions: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)  # contract field name -> new value
    body: bytes | None = None  # a corrected request that replaces the original

    def __bool__(self) -> bool:
        return self.drop_preconditions or bool(self.fields) or self.body is not None

    def describe(self) -> str:
        """`ifMatch, ... removed; force=true`: what the dry run and the result lines show."""
        parts = []
        if self.body is not None:
            parts.append("the request replaced by --body")
        if self.drop_preconditions:
            parts.append("preconditions removed")
        parts += [f"{name}={json.dumps(value)}" for name, value in self.fields.items()]
        return "; ".join(parts)


def apply(original: bytes, changes: Changes) -> bytes:
    """The body to send: `original` (or `changes.body`) with the changes made. Unchanged bytes when
    there is nothing to change, so a plain replay sends exactly what the producer sent."""
    base = changes.body if changes.body is not None else original
    if not changes.drop_preconditions and not changes.fields:
        return base
    try:
        data = json.loads(base)
    except (ValueError, RecursionError):
        raise ChangeError("the request is not JSON, so it cannot be changed") from None
    if not isinstance(data, dict):
        raise ChangeError("the request is not a JSON object, so it cannot be changed")
    if changes.drop_preconditions:
        for name in PRECONDITIONS:
            data.pop(name, None)
    data.update(changes.fields)
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")
