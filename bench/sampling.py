"""Where does a process's CPU go? A statistical profiler: ``setitimer(ITIMER_PROF)`` raises SIGPROF
every ``interval`` seconds of the process's CPU time (so waiting in ``select()`` is never sampled), and
the handler, which Python runs in the main thread at the next bytecode boundary, counts for each sample

- the innermost *project* function on the stack (``delete_job``, ``shared``, ``bench``): the step of
  ours that caused the work, with everything it called below it (libraries, C functions);
- the package of the innermost frame: who actually ran (a C function counts for the Python code that
  called it).

Unlike cProfile, whose cost per call inflates code made of many small calls, the shares follow CPU
time. Unix only (SIGPROF); elsewhere nothing is sampled.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Sampler"]

_ROOT = Path(__file__).resolve().parent.parent
_PROJECT = ("delete_job", "shared", "function_app", "bench")
_NOT_A_STEP = ("<module>", "main", "_sampled")  # the harness frames asyncio.run sits under
_NO_PROJECT = "(no project frame: event-loop callbacks, I/O, protocol parsing)"


def _package(filename: str) -> str:
    """``.../site-packages/httpx/_models.py`` -> httpx; a project file -> its top folder; else the
    standard library module (``logging``, ``asyncio``, ``json``...)."""
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else filename
    try:
        relative = path.relative_to(_ROOT)
    except ValueError:
        if filename.startswith("<"):
            return filename
        for i, part in enumerate(parts):
            if part.startswith("python3"):
                rest = parts[i + 1 :]
                return rest[0].removesuffix(".py") if rest else filename
        return path.stem
    return relative.parts[0].removesuffix(".py")


class Sampler:
    """``with Sampler() as s: ...``; then ``s.project`` and ``s.packages`` are Counters of samples."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.project: Counter[str] = Counter()
        self.packages: Counter[str] = Counter()
        self._previous: Any = None

    @property
    def samples(self) -> int:
        return sum(self.packages.values())

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.packages[_package(frame.f_code.co_filename)] += 1
        where = _NO_PROJECT
        walker: FrameType | None = frame
        while walker is not None:
            code = walker.f_code
            if _package(code.co_filename) in _PROJECT and code.co_name not in _NOT_A_STEP:
                name = Path(code.co_filename).relative_to(_ROOT).as_posix()
                where = f"{name}:{code.co_qualname}"
                break
            walker = walker.f_back
        self.project[where] += 1

    def __enter__(self) -> Sampler:
        if hasattr(signal, "SIGPROF"):
            self._previous = signal.signal(signal.SIGPROF, self._sample)
            signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if hasattr(signal, "SIGPROF"):
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, self._previous)
