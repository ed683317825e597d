"""The Service Bus trigger: `delete_job`, wired to its processor.

Settings are read when this module is imported, so a bad one stops the app before any message is
consumed. Everything with a connection (the credential, Batch clients, the Service Bus sender, the
processor) is created once per event loop, on first use, and reused by every invocation after.
"""

from __future__ import annotations

import azure.functions as func

from delete_job.processor import Processor
from delete_job.records import Received
from delete_job.retry import parse_retry_attempt
from shared.loop_local import LoopLocal
from shared.settings import load_settings

__all__ = ["blueprint", "delete_job", "received_from"]

SETTINGS = load_settings()
blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions is untyped here


_processor = LoopLocal(lambda: Processor.create(SETTINGS))


def received_from(msg: func.ServiceBusMessage) -> Received:
    """The delivery as the processor sees it."""
    properties = dict(msg.application_properties or {})
    return Received(
        message_id=msg.message_id or "",
        body=msg.get_body(),
        correlation_id=msg.correlation_id,
        content_type=msg.content_type,
        subject=getattr(msg, "subject", None) or getattr(msg, "label", None),
        enqueued_time_utc=msg.enqueued_time_utc,
        delivery_count=msg.delivery_count,
        application_properties=properties,
        retry_attempt=parse_retry_attempt(properties.get("retryAttempt")),
    )


# dataType binary: the body reaches the function as the producer's bytes. Without it the Service Bus
# extension binds a string (MessageToStringConverter), and a body that is not UTF-8 arrives with U+FFFD
# for every bad byte (Azure/azure-functions-host#3125): it could then pass as a valid request, and its
# failure record could not keep the original bytes (contract section 5, bodyBase64). The cost: an AMQP
# value body, which no Service Bus SDK sends, cannot be bound to bytes; the invocation fails and the
# broker dead-letters it at maxDeliveryCount, into the failure queue (emulators/host/_messages.py).
@blueprint.service_bus_queue_trigger(
    arg_name="msg",
    queue_name="%DELETION_QUEUE%",
    connection="ServiceBusConnection",
    data_type=func.DataType.BINARY,
)
async def delete_job(msg: func.ServiceBusMessage) -> None:
    """Delete the Batch job a message names, or leave a failure record or a retry copy."""
    await _processor.get().process(received_from(msg))
