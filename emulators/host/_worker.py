"""The app's functions as one Python worker process holds them, and what a function timeout does to it.

Azure's host runs a Python app in a worker process of its own, and answers an invocation that exceeds
``functionTimeout`` by restarting that whole process ("A function timeout has occurred. Restarting worker
process executing invocationId ...": Azure/azure-functions-host, ``WebScriptHostExceptionHandler
.OnTimeoutExceptionAsync``). Every invocation in flight in it is lost, not only the slow one, and their
messages are abandoned; the new process imports the app afresh. This host runs the app in its own
process, so it does the same in place: it cancels every invocation in flight (a ``def`` function still
running in its thread runs on, its result ignored), and imports the app's modules again before the next
invocation. The difference: a cancelled coroutine runs its ``finally`` blocks, where a killed process
would not.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

__all__ = ["Worker"]

log = logging.getLogger("emulators.host")


class Worker:
    """The loaded functions by name, the invocations in flight, and the restart on a timeout."""

    def __init__(
        self,
        functions: dict[str, Callable[..., Any]],
        load: Callable[[], dict[str, Callable[..., Any]]],
        app_dir: Path,
        stats: Counter[str],
    ) -> None:
        self.functions = functions  # as first imported; ``load`` imports them again
        self._load = load
        self._app_dir = app_dir.resolve()
        self._stats = stats
        self._calls: set[asyncio.Task[Any]] = set()
        self._lost: set[asyncio.Task[Any]] = set()  # cancelled by a restart

    def start(
        self, name: str, call: Callable[[Callable[..., Any]], Coroutine[Any, Any, Any]]
    ) -> asyncio.Task[Any]:
        """Run ``call`` with the current worker's function ``name`` as an invocation of this worker."""
        task = asyncio.create_task(call(self.functions[name]))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    def lost(self, task: asyncio.Task[Any]) -> bool:
        """Whether a restart ended this invocation (asked once, by whoever awaits it)."""
        if task in self._lost:
            self._lost.discard(task)
            return True
        return False

    def restart(self, invocation: str) -> None:
        """End every invocation in flight and import the app again, as a new worker process would."""
        log.error(
            "A function timeout has occurred. Restarting worker process executing invocationId '%s'"
            " (%d invocation(s) in flight are lost)",
            invocation,
            len(self._calls),
        )
        self._stats["workerRestarts"] += 1
        for task in list(self._calls):
            self._lost.add(task)
            task.cancel()
        for name in self._app_modules():
            del sys.modules[name]
        self.functions = self._load()

    def _app_modules(self) -> list[str]:
        """The modules imported from the app's folder (not installed packages, not this host)."""
        found = []
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if not path or name == "emulators" or name.startswith("emulators."):
                continue
            resolved = Path(path).resolve()
            if resolved.is_relative_to(self._app_dir) and "site-packages" not in resolved.parts:
                found.append(name)
        return found
