"""Command-line plumbing shared by the emulators: common options, stderr logging, and one line for a
failure to start."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def parser(prog: str, description: str, *, default_port: int | None = None) -> argparse.ArgumentParser:
    """A parser with ``--port``, ``--host``, ``--verbose`` and ``--debug``."""
    result = argparse.ArgumentParser(prog=prog, description=description)
    result.add_argument(
        "--port",
        type=int,
        required=default_port is None,
        default=default_port,
        help="TCP port; 0 picks a free one" + (f" (default {default_port})" if default_port else ""),
    )
    result.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    result.add_argument("--verbose", action="store_true", help="log every request to stderr")
    result.add_argument("--debug", action="store_true", help="a failure shows its traceback")
    return result


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr (stdout carries only the "listening on" line); quiet unless verbose."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


DEBUG_HINT = " (--debug shows the traceback)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def describe_startup_failure(exc: BaseException, *, port: int | None) -> str:
    """One line for a process that could not start: what is wrong, which setting, what to do."""
    from emulators._launch import EmulatorStartError  # noqa: PLC0415
    from shared.settings import SettingsError  # noqa: PLC0415 - the app's settings, read by the host

    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is already in use: is it already running? Stop the other process, or choose"
            " another port with --port"
        )
    if isinstance(exc, EmulatorStartError):  # a child of `up`: its own one line says why
        lines = [line for line in exc.stderr_tail.splitlines() if line.strip()]
        why = lines[-1].partition(": error: ")[2] or lines[-1] if lines else "no output"
        module = exc.args[0].split()[0]
        return f"{module} could not start: {why.removesuffix(DEBUG_HINT)}"
    if isinstance(exc, SettingsError):
        return f"{exc}; fix it in local.settings.json or the environment"
    if type(exc).__module__.startswith("azure.servicebus") and "connect" in str(exc).lower():
        return (
            f"cannot reach Service Bus ({_first_line(exc)}); is it running? `make up` starts the emulators"
            " that ServiceBusConnection names"
        )
    return f"{type(exc).__name__}: {_first_line(exc)}"


@contextmanager
def startup_errors(prog: str, *, debug: bool, port: int | None = None) -> Iterator[None]:
    """A failure inside ends the process with one line on stderr and exit 1 (the traceback only with
    --debug); Ctrl-C ends it quietly with 130."""
    try:
        yield
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(f"{prog}: error: {describe_startup_failure(exc, port=port)}{DEBUG_HINT}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
