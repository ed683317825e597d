"""One instance of a resource per running event loop, created on first use and reused after.

Connection pools (aiohttp sessions, Service Bus links) are bound to the loop that created them; the
Functions worker keeps one loop for its whole life, while tests make a loop per test. Keying on the
loop gives the worker one shared pool and each test a fresh one, without globals leaking across loops.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LoopLocal"]

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """`get()` returns this loop's instance, creating it with `factory()` the first time."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        instance = self._instances.get(loop)
        if instance is None:
            instance = self._factory()
            self._instances[loop] = instance
        return instance

    def pop(self) -> T | None:
        """Forget this loop's instance (the caller closes it)."""
        return self._instances.pop(asyncio.get_running_loop(), None)
