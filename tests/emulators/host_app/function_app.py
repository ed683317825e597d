"""A test function app for the local host: what each invocation does is in the message body.

Body: {"action": "ok" | "raise" | "sleep", "seconds": float}. Every invocation appends
"start" and "end" (or "error") events as JSON lines to the file named by HOST_TEST_EVENTS.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

import azure.functions as func

app = func.FunctionApp()
_lock = threading.Lock()


def record(event: str, msg: func.ServiceBusMessage, **extra: Any) -> None:
    entry = {
        "event": event,
        "time": time.time(),
        "messageId": msg.message_id,
        "deliveryCount": msg.delivery_count,
        **extra,
    }
    with _lock, open(os.environ["HOST_TEST_EVENTS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(entry, default=str) + "\n")


def describe(msg: func.ServiceBusMessage) -> dict[str, Any]:
    return {
        "body": msg.get_body().decode("utf-8"),
        "contentType": msg.content_type,
        "correlationId": msg.correlation_id,
        "applicationProperties": msg.application_properties,
        "userProperties": msg.user_properties,
        "enqueuedTimeUtc": msg.enqueued_time_utc.isoformat() if msg.enqueued_time_utc else None,
        "sequenceNumber": msg.sequence_number,
        "lockedUntil": msg.locked_until.isoformat() if msg.locked_until else None,
        "lockToken": msg.lock_token,
        "subject": msg.subject,
        "isServiceBusMessage": isinstance(msg, func.ServiceBusMessage),
    }


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%ASYNC_QUEUE%", connection="ServiceBusConnection")
async def async_handler(msg: func.ServiceBusMessage) -> None:
    command = json.loads(msg.get_body())
    record("start", msg, **describe(msg))
    if command.get("action") == "sleep":
        await asyncio.sleep(float(command.get("seconds", 0)))
    if command.get("action") == "raise":
        record("error", msg)
        raise RuntimeError("the test asked this invocation to fail")
    record("end", msg)


@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%SYNC_QUEUE%", connection="ServiceBusConnection"
)
def sync_handler(message: func.ServiceBusMessage) -> None:
    command = json.loads(message.get_body())
    record("start", message, **describe(message))
    if command.get("action") == "sleep":
        time.sleep(float(command.get("seconds", 0)))
    if command.get("action") == "raise":
        record("error", message)
        raise RuntimeError("the test asked this invocation to fail")
    record("end", message)
