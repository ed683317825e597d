"""A test function app for the local host's functionTimeout (host.json here: 6 s).

Body: {"action": "sleep", "seconds": float} or {"action": "until", "time": epoch seconds}. The module
appends an "import" event when it is imported, and every invocation "start" and "end" events, as JSON
lines to the file named by HOST_TEST_EVENTS.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import azure.functions as func


def record(event: str, **fields: Any) -> None:
    entry = {"event": event, "time": time.time(), "pid": os.getpid(), **fields}
    with open(os.environ["HOST_TEST_EVENTS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


record("import")
app = func.FunctionApp()


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%TIMEOUT_QUEUE%", connection="ServiceBusConnection"
)
async def timed(msg: func.ServiceBusMessage) -> None:
    command = json.loads(msg.get_body())
    record("start", messageId=msg.message_id, deliveryCount=msg.delivery_count)
    if command["action"] == "sleep":
        await asyncio.sleep(float(command["seconds"]))
    else:  # "until": a moment that may be past already (then it returns at once)
        await asyncio.sleep(max(0.0, float(command["time"]) - time.time()))
    record("end", messageId=msg.message_id, deliveryCount=msg.delivery_count)
