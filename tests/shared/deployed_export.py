"""``python -m tests.shared.deployed_export MESSAGES``: process messages as the deployed app does, then exit.

A child process of tests/shared/test_azure_monitor_export.py. ``Processor.create(load_settings(env))``
with ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set takes the production path (shared/telemetry.py
``from_settings`` -> ``_azure_monitor``): the Azure Monitor exporters with the managed identity. MESSAGES
is a JSON list of ``{"body": {...}, "properties": {...}}``; one JSON line per message is printed
(``messageId``, ``outcome``, ``requestId``, ``clientRequestId``).

Why a process of its own: the exporters batch in background threads and nothing outside
shared/telemetry.py holds their providers; the OpenTelemetry SDK shuts every provider down at
interpreter exit (``shutdown_on_exit``: an ``atexit`` hook that flushes the span and log batches and
reads the metrics one last time), as the Functions worker's exit does. So everything is uploaded by
the time this process has ended, and no exporter thread outlives the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime

from delete_job.processor import Processor
from delete_job.records import Received
from emulators import canary
from shared.settings import load_settings


async def _main(messages: list[dict[str, object]]) -> None:
    processor = Processor.create(load_settings(dict(os.environ)))
    try:
        for message in messages:
            received = Received(
                message_id=str(uuid.uuid4()),
                body=json.dumps(message["body"]).encode(),
                content_type="application/json",
                enqueued_time_utc=datetime.now(UTC),
                delivery_count=1,
                application_properties=dict(message.get("properties") or {}),  # type: ignore[call-overload]
            )
            result = await processor.process(received)
            line = {
                "messageId": received.message_id,
                "outcome": str(result.outcome),
                "requestId": result.request_id,
                "clientRequestId": result.client_request_id,
            }
            print(json.dumps(line), flush=True)
    finally:
        await processor.close()


if __name__ == "__main__":
    # The exporters' warnings (a refused upload, a failed token request) for the test's failure message.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    canary.watch_logging("deployed export child")  # the exporters' own log records included
    asyncio.run(_main(json.loads(sys.argv[1])))
