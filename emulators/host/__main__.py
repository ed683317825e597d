"""``python -m emulators.host``: run a function app's Service Bus queue triggers locally.

Loads local settings (environment variables win), imports the app (``--app module:attribute``, default
``function_app:app``, from ``--app-dir``, default the current directory), resolves each Service Bus queue
trigger's ``%SETTING%`` names, and feeds it from its queue with host.json's options. Connections: the
setting named by the trigger's ``connection`` holds a connection string, or ``<connection>__fullyQualified
Namespace`` names a real namespace reached with the developer's Azure credential. A status endpoint
(``GET /_host/stats``) listens on ``--port``; ``--telemetry FILE`` exports what the app's OpenTelemetry
code emits (spans, log records, metrics) to FILE as JSON lines (``-``: stderr), and
``OTEL_EXPORTER_OTLP_ENDPOINT`` sends it to that OTLP/HTTP collector; the one stdout line ``Functions host
listening on URL`` says that every trigger is receiving. SIGTERM/SIGINT stop receiving and let in-flight
invocations finish. An invocation past host.json's ``functionTimeout`` restarts the worker, as Azure's
host does (``_worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from emulators import _cli
from emulators._http import Request, Response, listen
from emulators.host._config import HostOptions, apply_local_settings, read_host_json, resolve
from emulators.host._logs import configure_logging
from emulators.host._runner import QueueFunction, TriggerLoop
from emulators.host._worker import Worker

log = logging.getLogger("emulators.host")


def load_functions(spec: str, env: dict[str, str] | os._Environ[str]) -> list[QueueFunction]:
    """Import ``module:attribute`` and return its Service Bus queue-triggered functions."""
    module_name, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    found = []
    for function in app.get_functions():
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "serviceBusTrigger":
            continue
        if getattr(trigger, "topic_name", None):
            raise SystemExit(f"{function.get_function_name()}: topic triggers are not supported here")
        data_type = trigger.get_dict_repr().get("dataType")  # a DataType (str() is its name) or None
        found.append(
            QueueFunction(
                name=function.get_function_name(),
                queue=resolve(trigger.queue_name, env),
                connection=trigger.connection,
                arg_name=trigger.name,
                function=function.get_user_function(),
                data_type=str(data_type).lower() if data_type else None,
            )
        )
    if not found:
        raise SystemExit(f"{spec} has no Service Bus queue-triggered function")
    return found


def make_client(connection: str, env: dict[str, str] | os._Environ[str]) -> Any:
    """A ServiceBusClient for the trigger's connection setting, as the host would build it."""
    from azure.servicebus.aio import ServiceBusClient  # noqa: PLC0415

    connection_string = env.get(connection)
    if connection_string:
        return ServiceBusClient.from_connection_string(connection_string)
    namespace = env.get(f"{connection}__fullyQualifiedNamespace")
    if not namespace:
        raise SystemExit(f"neither {connection} nor {connection}__fullyQualifiedNamespace is set")
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    return ServiceBusClient(namespace, DefaultAzureCredential())


async def serve(args: argparse.Namespace, app_dir: Path) -> None:
    used = apply_local_settings(app_dir, Path(args.settings) if args.settings else None, os.environ)
    log.info("settings from %s", used or "the environment only")
    sys.path.insert(0, str(app_dir))
    functions = load_functions(args.app, os.environ)
    options = read_host_json(app_dir)
    if not options.auto_complete_messages:
        raise SystemExit("autoCompleteMessages=false is not supported: Python functions cannot settle")
    if args.max_concurrent_calls:
        options = HostOptions(**{**options.__dict__, "max_concurrent_calls": args.max_concurrent_calls})
    stats: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    async with AsyncExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(thread_name_prefix="function"))
        worker = Worker(
            {f.name: f.function for f in functions},
            lambda: {f.name: f.function for f in load_functions(args.app, os.environ)},
            app_dir,
            stats,
        )
        triggers: list[TriggerLoop] = []
        for target in functions:
            client = await stack.enter_async_context(make_client(target.connection, os.environ))
            triggers.append(TriggerLoop(target, client, options, executor, stats, worker=worker))
        tasks = [asyncio.create_task(trigger.run()) for trigger in triggers]
        all_ready = asyncio.ensure_future(asyncio.gather(*(t.ready.wait() for t in triggers)))
        first: list[asyncio.Future[Any]] = [*tasks, all_ready]
        done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task in done:  # a trigger failed before it was ready: show why and stop
                all_ready.cancel()
                all_ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no noise
                task.result()

        async def handle(request: Request) -> Response:
            if request.path == "/_host/stats":
                in_flight = sum(trigger.in_flight for trigger in triggers)
                return Response.json({**stats, "inFlight": in_flight})
            if request.path == "/_host/health":
                return Response.json({"ok": True})
            return Response.json({"error": "not found"}, status=404)

        listener = await listen(lambda _url: handle, args.host, args.port)
        names = ", ".join(f"{f.name} <- {f.queue}" for f in functions)
        log.info("functions: %s; maxConcurrentCalls=%d", names, options.max_concurrent_calls)
        sys.stdout.write(f"Functions host listening on {listener.url}\n")
        sys.stdout.flush()
        waiter = asyncio.create_task(stopping.wait())
        running: list[asyncio.Future[Any]] = [waiter, *tasks]
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for trigger in triggers:
            trigger.stop()
        await asyncio.gather(*tasks)
        waiter.cancel()
        await listener.close()
    log.info("stopped: %s", dict(stats))


def main(argv: list[str] | None = None) -> None:
    # 7071 is the port `func start` uses (Azure Functions Core Tools).
    parser = _cli.parser(
        "python -m emulators.host", "Run a function app's Service Bus triggers locally.", default_port=7071
    )
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--app-dir", default=".", help="folder of the app, host.json and local settings")
    parser.add_argument(
        "--settings", help="local settings file (default local.settings.json, else the sample)"
    )
    parser.add_argument("--max-concurrent-calls", type=int, help="override host.json's maxConcurrentCalls")
    parser.add_argument("--log-file", help="also write every log record, as JSON lines, to this file")
    parser.add_argument(
        "--telemetry",
        metavar="FILE",
        help="export the app's OpenTelemetry spans, log records and metrics as JSON lines to FILE ('-':"
        " stderr), as Azure Monitor would receive them (emulators.telemetry)",
    )
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, json_file=args.log_file)
    with _cli.startup_errors("emulators.host", debug=args.debug, port=args.port):
        otlp = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))  # the standard variable: a collector
        if args.telemetry or otlp:
            from emulators.telemetry import install  # noqa: PLC0415 - OpenTelemetry only when asked for

            out = None
            if args.telemetry:
                out = sys.stderr if args.telemetry == "-" else Path(args.telemetry)
            install("Functions host", out, otlp=otlp)
        asyncio.run(serve(args, Path(args.app_dir).resolve()))


if __name__ == "__main__":
    main()
