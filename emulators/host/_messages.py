"""A received Service Bus message as the Functions host hands it to a Python function."""

from __future__ import annotations

import json
from typing import Any

from azure.functions.servicebus import ServiceBusMessage as FunctionMessage
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

__all__ = ["body_bytes", "to_function_message"]


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def body_bytes(message: ServiceBusReceivedMessage) -> bytes:
    """The body as bytes: data sections joined; a value body encoded as the host would."""
    if message.body_type == AmqpMessageBodyType.DATA:
        return b"".join(message.body)
    value = message.body
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, default=str).encode("utf-8")


def to_function_message(message: ServiceBusReceivedMessage) -> FunctionMessage:
    """Fill every field the real host fills. DeliveryCount is 1 on the first delivery, as the
    .NET SDK under the host reports it (AMQP's header counts prior attempts, from 0)."""
    properties = {_text(k): _text(v) for k, v in (message.application_properties or {}).items()}
    delivery_count = (message.delivery_count or 0) + 1
    lock_token = str(message.lock_token) if message.lock_token is not None else None
    message_id = message.message_id or ""
    metadata: dict[str, Any] = {
        "MessageId": message_id,
        "DeliveryCount": delivery_count,
        "ContentType": message.content_type,
        "CorrelationId": message.correlation_id,
        "EnqueuedTimeUtc": message.enqueued_time_utc,
        "ExpiresAtUtc": message.expires_at_utc,
        "LockedUntil": message.locked_until_utc,
        "LockToken": lock_token,
        "SequenceNumber": message.sequence_number,
        "Subject": message.subject,
        "ApplicationProperties": properties,
        "UserProperties": properties,
    }
    return FunctionMessage(
        body=body_bytes(message),
        trigger_metadata=metadata,
        application_properties=properties,
        user_properties=dict(properties),
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        dead_letter_error_description=message.dead_letter_error_description,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_source=message.dead_letter_source,
        delivery_count=delivery_count,
        enqueued_sequence_number=message.enqueued_sequence_number,
        enqueued_time_utc=message.enqueued_time_utc,
        expires_at_utc=message.expires_at_utc,
        label=message.subject,
        locked_until=message.locked_until_utc,
        lock_token=lock_token,
        message_id=message_id,
        partition_key=message.partition_key,
        reply_to=message.reply_to,
        reply_to_session_id=message.reply_to_session_id,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time_utc,
        sequence_number=message.sequence_number,
        session_id=message.session_id,
        state=int(message.state),
        subject=message.subject,
        time_to_live=message.time_to_live,
        to=message.to,
    )
