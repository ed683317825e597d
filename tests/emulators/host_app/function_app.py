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
from datetime import datetime
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


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe(msg: func.ServiceBusMessage) -> dict[str, Any]:
    """Every field of the message the function got, as JSON (the body as text and as hex)."""
    ttl = msg.time_to_live
    return {
        "body": msg.get_body().decode("utf-8", errors="replace"),
        "bodyHex": msg.get_body().hex(),
        "contentType": msg.content_type,
        "correlationId": msg.correlation_id,
        "applicationProperties": msg.application_properties,
        "userProperties": msg.user_properties,
        "enqueuedTimeUtc": _moment(msg.enqueued_time_utc),
        "expiresAtUtc": _moment(msg.expires_at_utc),
        "sequenceNumber": msg.sequence_number,
        "lockedUntil": _moment(msg.locked_until),
        "lockToken": msg.lock_token,
        "subject": msg.subject,
        "label": msg.label,
        "replyTo": msg.reply_to,
        "to": msg.to,
        "sessionId": msg.session_id,
        "partitionKey": msg.partition_key,
        "deadLetterSource": msg.dead_letter_source,
        "state": msg.state,
        "timeToLive": ttl.total_seconds() if ttl is not None else None,
        "scheduledEnqueueTimeUtc": _moment(msg.scheduled_enqueue_time_utc),
        "metadataKeys": sorted(msg.metadata or {}),
        "isServiceBusMessage": isinstance(msg, func.ServiceBusMessage),
    }


def command_of(msg: func.ServiceBusMessage) -> dict[str, Any]:
    """The body's command; a body that is not a JSON object (the binding tests send such) is "ok"."""
    try:
        command = json.loads(msg.get_body())
    except ValueError:
        return {}
    return command if isinstance(command, dict) else {}


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%ASYNC_QUEUE%", connection="ServiceBusConnection")
async def async_handler(msg: func.ServiceBusMessage) -> None:
    record("start", msg, **describe(msg))
    command = command_of(msg)
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
    record("start", message, **describe(message))
    command = command_of(message)
    if command.get("action") == "sleep":
        time.sleep(float(command.get("seconds", 0)))
    if command.get("action") == "raise":
        record("error", message)
        raise RuntimeError("the test asked this invocation to fail")
    record("end", message)
