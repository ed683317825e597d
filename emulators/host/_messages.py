"""A received message as Azure's Functions host sends it to the Python worker, decoded as the worker does.

The local host does not build ``azure.functions.ServiceBusMessage`` itself: it builds what the host's RPC
carries for a Service Bus trigger, the body and the trigger metadata as typed data (``meta.Datum``, the
worker's image of the protobuf ``TypedData``), and hands both to azure-functions' own
``ServiceBusMessageInConverter.decode``, as the Python worker does. The rules, and where they come from:

- The trigger metadata is the Service Bus extension's binding data for one message
  (Azure/azure-sdk-for-net, sdk/servicebus/Microsoft.Azure.WebJobs.Extensions.ServiceBus/src/Triggers/
  ServiceBusTriggerBindingStrategy.cs, ``AddBindingData``): DeliveryCount, DeadLetterSource, LockToken,
  ExpiresAtUtc and ExpiresAt, EnqueuedTimeUtc and EnqueuedTime, MessageId, ContentType, ReplyTo,
  SequenceNumber, To, Subject and Label, CorrelationId, ApplicationProperties and UserProperties,
  SessionId, ReplyToSessionId, PartitionKey, TransactionPartitionKey. Nothing else: LockedUntil, State,
  TimeToLive, ScheduledEnqueueTimeUtc, EnqueuedSequenceNumber and the dead-letter reason never reach a
  Python function, which sees ``None`` for them. DeliveryCount is the .NET SDK's, 1 on the first delivery.
- A value that is null is left out of the request (Azure/azure-functions-host,
  src/WebJobs.Script.Grpc/MessageExtensions/ScriptInvocationContextExtensions.cs,
  ``ToRpcInvocationRequest``); every other one goes through ``ToRpc``
  (src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs): a string as ``string``,
  a byte array as ``bytes``, anything else (numbers, dates, the properties dictionary) as ``json``,
  serialized by Newtonsoft.Json with its defaults. So a number arrives as JSON text; ``ExpiresAtUtc`` and
  ``EnqueuedTimeUtc`` are ``DateTimeOffset.DateTime`` values, of unspecified kind, written without an
  offset ("2026-12-03T09:53:23.1234567"), which the converter turns into *naive* datetimes; the
  ``DateTimeOffset`` twins carry "+00:00". Application properties arrive as one JSON object: a string,
  number or boolean as itself, a timestamp as ISO text with "Z", a UUID as its text, binary as base64
  (see ``_json_value`` for what the Python SDK lets the local host tell apart).
  (Python worker pull request Azure/azure-functions-python-worker#158 shows such a request:
  ``"DeliveryCount": {"Json": "1"}``.)
- The body: a trigger without ``dataType`` is bound as a string by the
  extension's ``MessageToStringConverter`` (src/Triggers/MessageToStringConverter.cs): data sections
  decoded as strict UTF-8 (a BOM stays, as U+FEFF); bytes that are not UTF-8 fall back, past a .NET
  DataContract string reader, to ``BinaryData.ToString()``, a UTF-8 decode that puts U+FFFD for every
  bad sequence; an AMQP value body binds only when it is a string, any other value or a sequence body
  fails the binding (``NotSupportedException``): the invocation fails and the message is abandoned, as
  here. The worker turns the string back into UTF-8 bytes, so a function sees a non-UTF-8 body with
  EF BF BD where the bad bytes were (Azure/azure-functions-host#3125,
  Azure/azure-functions-nodejs-worker#684). ``dataType: binary`` (as ``delete_job`` declares it) binds
  the body as bytes (``MessageToByteArrayConverter``), unchanged, through ``ServiceBusReceivedMessage.Body``,
  which only a data body has (Azure.Messaging.ServiceBus, ``AmqpAnnotatedMessageExtensions.GetBody``
  throws ``NotSupportedException`` for a value or sequence body): with it, any value body fails the
  binding. Not reproduced: unwrapping a body that a .NET
  ``BrokeredMessage(string)`` serialized as a DataContract (the function gets it replacement-decoded).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessage as FunctionMessage
from azure.functions.servicebus import ServiceBusMessageInConverter
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

__all__ = ["BindingError", "to_function_message", "trigger_data", "trigger_metadata"]


_NEVER = "9999-12-31T23:59:59.9999999"


class BindingError(Exception):
    """The trigger cannot bind this message (the real host fails the invocation the same way)."""


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _net_datetime(moment: datetime, *, with_offset: bool) -> str:
    """Newtonsoft.Json's ISO form: seven fractional digits with trailing zeros cut; "+00:00" for a
    DateTimeOffset, "Z" for a UTC DateTime, nothing for an unspecified one."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}0".rstrip("0")
    if fraction:
        text += "." + fraction
    return text + ("+00:00" if with_offset else "")


def _json_value(value: Any) -> Any:
    """An application property as Newtonsoft.Json writes the .NET SDK's value of it. The Python SDK
    decodes an AMQP string, symbol and binary alike to bytes (here: text), and a timestamp to its
    milliseconds (here: that number; Azure: ISO text): what it does not tell apart cannot be told."""
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, datetime):  # a UTC DateTime
        return _net_datetime(value, with_offset=False) + "Z"
    if isinstance(value, uuid.UUID):
        return str(value)
    return value  # null, boolean, the integer and floating-point types: JSON as they are


def _json(value: Any) -> meta.Datum:
    return meta.Datum(json.dumps(value, separators=(",", ":"), ensure_ascii=False), "json")


def _string(value: Any) -> meta.Datum:
    return meta.Datum(_text(value), "string")


def trigger_metadata(message: ServiceBusReceivedMessage) -> dict[str, meta.Datum]:
    """The binding data of one message, as typed data; null values left out."""
    properties = {_text(k): _json_value(v) for k, v in (message.application_properties or {}).items()}
    expires = message.expires_at_utc
    enqueued = message.enqueued_time_utc
    strings = {
        "DeadLetterSource": message.dead_letter_source,
        "LockToken": str(message.lock_token) if message.lock_token is not None else None,
        "MessageId": message.message_id,
        "ContentType": message.content_type,
        "ReplyTo": message.reply_to,
        "To": message.to,
        "Subject": message.subject,
        "Label": message.subject,
        "CorrelationId": message.correlation_id,
        "SessionId": message.session_id,
        "ReplyToSessionId": message.reply_to_session_id,
        "PartitionKey": message.partition_key,
        "TransactionPartitionKey": None,  # the Python SDK does not surface it
    }
    metadata = {name: _string(value) for name, value in strings.items() if value is not None}
    metadata["DeliveryCount"] = _json((message.delivery_count or 0) + 1)
    if message.sequence_number is not None:
        metadata["SequenceNumber"] = _json(message.sequence_number)
    # No expiry (no TTL on the message): the .NET SDK's ExpiresAt is DateTimeOffset.MaxValue.
    metadata["ExpiresAtUtc"] = _json(_net_datetime(expires, with_offset=False) if expires else _NEVER)
    metadata["ExpiresAt"] = _json(_net_datetime(expires, with_offset=True) if expires else _NEVER + "+00:00")
    if enqueued is not None:
        metadata["EnqueuedTimeUtc"] = _json(_net_datetime(enqueued, with_offset=False))
        metadata["EnqueuedTime"] = _json(_net_datetime(enqueued, with_offset=True))
    metadata["ApplicationProperties"] = metadata["UserProperties"] = _json(properties)
    return metadata


def trigger_data(message: ServiceBusReceivedMessage, data_type: str | None = None) -> meta.Datum:
    """The body as the host binds it: bytes for ``dataType: binary``, else a string (see above)."""
    binary = data_type in ("binary", "stream")
    if message.body_type == AmqpMessageBodyType.DATA:
        raw = b"".join(message.body)
        if binary:
            return meta.Datum(raw, "bytes")
        return meta.Datum(raw.decode("utf-8", errors="replace"), "string")
    if binary:  # ServiceBusReceivedMessage.Body: data bodies only (see above)
        kind = "value" if message.body_type == AmqpMessageBodyType.VALUE else "sequence"
        raise BindingError(f"a message with a {kind} body cannot be bound to bytes (as Azure's says)")
    # An AMQP string value comes out of the Python SDK as bytes, like a binary one (which Azure would
    # refuse to bind): taken as the string it most likely is.
    if message.body_type == AmqpMessageBodyType.VALUE and isinstance(message.body, str | bytes):
        return meta.Datum(_text(message.body), "string")
    what = (
        f"a value of type {type(message.body).__name__}"
        if message.body_type == AmqpMessageBodyType.VALUE
        else "a sequence body"
    )
    raise BindingError(f"a message with {what} cannot be bound to a string (as Azure's extension says)")


class _Converter(ServiceBusMessageInConverter, binding=None):
    """azure-functions' converter, remembering the datetimes it parsed: it tries up to 13 ``strptime``
    formats per date (93 % of its 290 µs a message), and every message without a TTL carries the same
    ExpiresAtUtc. The same decoding, for less CPU."""

    @classmethod
    def _parse_datetime(cls, datetime_str: str | None) -> datetime | None:
        return _parse_datetime(datetime_str)


@functools.lru_cache(maxsize=256)
def _parse_datetime(datetime_str: str | None) -> datetime | None:
    parsed: datetime | None = ServiceBusMessageInConverter._parse_datetime(datetime_str)
    return parsed


def to_function_message(message: ServiceBusReceivedMessage, data_type: str | None = None) -> FunctionMessage:
    """What the function gets: the worker's own converter over what the host would send."""
    metadata: Mapping[str, meta.Datum] = trigger_metadata(message)
    decoded = _Converter.decode(trigger_data(message, data_type), trigger_metadata=metadata)
    if not isinstance(decoded, FunctionMessage):  # cardinality one: UserProperties, not ...Array
        raise TypeError(f"the converter returned {type(decoded).__name__} for one message")
    return decoded
