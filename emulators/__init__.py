"""Local stand-ins for Azure, run as real processes that tests reach over real sockets.

- ``python -m emulators.batch``: the Batch data plane for jobs (``emulators.batch``).
- ``python -m emulators.identity``: the App Service managed-identity endpoint.
- ``emulators.control``: typed clients for their ``/_emulator/`` control APIs.
- ``start()``: run one as a child process and wait until it listens.

Nothing in production code imports this package.
"""

from emulators._launch import EmulatorStartError, RunningProcess, start

__all__ = ["EmulatorStartError", "RunningProcess", "start"]
