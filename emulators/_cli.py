"""Command-line plumbing shared by the emulators: common options and stderr logging."""

from __future__ import annotations

import argparse
import logging
import sys


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with ``--port``, ``--host`` and ``--verbose``."""
    result = argparse.ArgumentParser(prog=prog, description=description)
    result.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    result.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    result.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return result


def setup_logging(verbose: bool) -> None:
    """Logs go to stderr (stdout carries only the "listening on" line); quiet unless verbose."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
