"""``python -m emulators up``: every local stand-in the app needs, until Ctrl-C.

Reads the app's local settings (local.settings.json, else the sample; environment variables win) and
starts, on the ports those settings name: the Batch emulator for ``BATCH_ENDPOINT`` and one for each
``BATCH_ACCOUNTS`` entry, the managed-identity endpoint for ``IDENTITY_ENDPOINT`` (secret
``IDENTITY_HEADER``), and the Service Bus emulator for ``ServiceBusConnection`` with ``DELETION_QUEUE``
(its dead letters forwarded to ``DEAD_LETTER_QUEUE``) and ``DEAD_LETTER_QUEUE`` (duplicate detection on).
``--free-ports`` ignores the ports and prints the settings to use instead. Then it prints the settings
and waits; Ctrl-C (or SIGTERM) stops every process it started.

``python -m emulators seed JOB [JOB ...] [--account NAME]`` creates active jobs in the running Batch
emulator that ``BATCH_ENDPOINT`` (or the ``BATCH_ACCOUNTS`` entry ``NAME``) names, through its control API.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from emulators._cli import startup_errors
from emulators._launch import RunningProcess, start
from emulators.host._config import apply_local_settings

# As the deployment sets them: the failure queue's is longer than the longest delayed retry (RETRY_DELAYS
# default ends at 4 h); the deletion queue's drops a retry copy sent twice (infra/main.bicep,
# docs/deployment.md).
DUPLICATE_DETECTION_WINDOW = 24 * 3600
DELETION_DUPLICATE_DETECTION_WINDOW = 600


def _port(url: str, free: bool) -> str:
    return "0" if free else str(urlsplit(url.replace("sb://", "http://")).port or 0)


def _service_bus_endpoint(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return value
    raise SystemExit("ServiceBusConnection has no Endpoint=")


def start_all(env: dict[str, str], stack: ExitStack, *, free_ports: bool) -> dict[str, str]:
    """Start every emulator the settings name; return the settings that point at them."""
    settings: dict[str, str] = {}
    for name in ("BATCH_ENDPOINT", "DELETION_QUEUE", "DEAD_LETTER_QUEUE", "ServiceBusConnection"):
        if not env.get(name):
            raise SystemExit(
                f"setting {name} is required to start the emulators; set it or add it to local settings"
            )

    def run(module: str, *args: str, extra_env: dict[str, str] | None = None) -> RunningProcess:
        return stack.enter_context(start(module, *args, env=extra_env))

    batch = run("emulators.batch", "--port", _port(env["BATCH_ENDPOINT"], free_ports))
    settings["BATCH_ENDPOINT"] = batch.url
    accounts = json.loads(env.get("BATCH_ACCOUNTS") or "{}")
    for name, url in accounts.items():
        accounts[name] = run("emulators.batch", "--port", _port(url, free_ports)).url
    if accounts:
        settings["BATCH_ACCOUNTS"] = json.dumps(accounts)
    secret = env.get("IDENTITY_HEADER") or "local-emulator-placeholder"
    identity = run(
        "emulators.identity",
        "--port",
        _port(env.get("IDENTITY_ENDPOINT", "http://127.0.0.1:0"), free_ports),
        extra_env={"IDENTITY_HEADER": secret},
    )
    settings["IDENTITY_ENDPOINT"] = identity.url
    settings["IDENTITY_HEADER"] = secret
    deletion, failed = env["DELETION_QUEUE"], env["DEAD_LETTER_QUEUE"]
    endpoint = _service_bus_endpoint(env["ServiceBusConnection"])
    service_bus = run(
        "emulators.servicebus",
        "--port",
        _port(endpoint, free_ports),
        "--queue",
        f"{deletion}:lockDuration=60,maxDeliveryCount=10,forwardDeadLetteredMessagesTo={failed},"
        f"duplicateDetectionWindow={DELETION_DUPLICATE_DETECTION_WINDOW}",
        "--queue",
        f"{failed}:lockDuration=60,maxDeliveryCount=10,duplicateDetectionWindow={DUPLICATE_DETECTION_WINDOW}",
    )
    from emulators.servicebus import connection_string  # noqa: PLC0415

    settings["ServiceBusConnection"] = connection_string(service_bus.url)
    return settings


def seed(env: dict[str, str], job_ids: list[str], account: str | None) -> None:
    """Create `job_ids` (active) in the Batch emulator the settings name."""
    from emulators.control import BatchEmulator  # noqa: PLC0415

    url = env.get("BATCH_ENDPOINT", "")
    if account:
        accounts = json.loads(env.get("BATCH_ACCOUNTS") or "{}")
        if account not in accounts:
            raise SystemExit(f"error: BATCH_ACCOUNTS has no account {account!r} (it has {sorted(accounts)})")
        url = accounts[account]
    if not url:
        raise SystemExit("error: setting BATCH_ENDPOINT is required; set it or add it to local settings")
    with BatchEmulator(url, timeout=5) as batch:
        if not batch.health():
            raise SystemExit(f"error: no Batch emulator answers at {url}; start the emulators with `make up`")
        for job in batch.add_jobs(job_ids):
            print(f"job {job['id']} ({job['state']}, eTag {job['eTag']}) in the Batch emulator at {url}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    parser.add_argument("command", choices=["up", "seed"])
    parser.add_argument("jobs", nargs="*", help="seed: the job ids to create")
    parser.add_argument("--account", help="seed: a BATCH_ACCOUNTS name (default: BATCH_ENDPOINT)")
    parser.add_argument("--app-dir", default=".", help="folder of the app's local settings")
    parser.add_argument(
        "--settings", help="local settings file (default local.settings.json, else the sample)"
    )
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead of the settings'")
    parser.add_argument("--debug", action="store_true", help="a failure shows its traceback")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    used = apply_local_settings(Path(args.app_dir), Path(args.settings) if args.settings else None, env)
    if args.command == "seed":
        if not args.jobs:
            parser.error("seed needs at least one job id")
        seed(env, args.jobs, args.account)
        return
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with ExitStack() as stack, startup_errors("python -m emulators up", debug=args.debug):
        settings = start_all(env, stack, free_ports=args.free_ports)
        print(f"Emulators up (settings from {used}). Use these settings:")
        for name, value in settings.items():
            print(f"  export {name}='{value}'")
        print("Ctrl-C stops them all.")
        sys.stdout.flush()
        stopping.wait()
    print("Emulators stopped.")


if __name__ == "__main__":
    main()
