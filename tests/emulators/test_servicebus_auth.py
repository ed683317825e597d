"""Authentication as Service Bus does it (emulators/servicebus/_auth.py): a SAS token signed with an
unknown key name or a wrong key is refused on ``$cbs``, and so is a link from a client that put no
token at all; the development emulator's well-known key and a key given with ``--shared-access-key``
work. Sources: Service Bus docs, "Service Bus access control with Shared Access Signatures" (tokens,
keys, "the recipient (Service Bus) ... If the signature doesn't match ... access is denied");
Azure's answers as the Go SDK's live tests see them (azure-sdk-for-go,
sdk/messaging/azservicebus/receiver_test.go, TestReceiverUnauthorizedCreds: put-token ``status code
401``; a link without the claim: ``Unauthorized access. 'Send' claim(s) are required to perform this
operation``); what the Python SDK raises for each: its ``_pyamqp/cbs.py`` (a 401 put-token reply ->
TokenAuthFailure -> ServiceBusAuthenticationError) and ``_transport/_pyamqp_transport.py``
(``amqp:unauthorized-access`` -> ServiceBusAuthorizationError)."""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus._pyamqp import ReceiveClient, SendClient
from azure.servicebus._pyamqp.error import AMQPLinkError, ErrorCondition
from azure.servicebus._pyamqp.message import Message
from azure.servicebus._pyamqp.sasl import SASLAnonymousCredential
from azure.servicebus._pyamqp.utils import generate_sas_token
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport
from azure.servicebus.exceptions import ServiceBusAuthenticationError, ServiceBusAuthorizationError

from emulators.servicebus._auth import Grants, Keys, TokenRefused
from tests.conftest import (
    ServiceBusApi,
    ServiceBusHandle,
    ServiceBusSdks,
    _fresh_servicebus_queues,
    _SdkRunner,
)

# Tests of refusals open their clients with retry_total=0: the SDK retries a failed put-token (3 times
# by default, 11 s of backoff) before it raises, and the answer does not change.
_NO_RETRY = {"retry_total": 0}


@pytest.fixture
def sdks_with_key(
    servicebus: ServiceBusHandle, _servicebus_runner: _SdkRunner
) -> Iterator[dict[str, ServiceBusSdks]]:
    """The sync and aio SDK with connection strings whose key name or key differ from the emulator's."""
    variants = {
        "wrong key name": servicebus.connection_string.replace("=RootManageSharedAccessKey;", "=NoSuchRule;"),
        "wrong key": servicebus.connection_string.replace("SAS_KEY_VALUE", "V1JPTkctS0VZ"),
        "secondary key": servicebus.connection_string.replace("SAS_KEY_VALUE", servicebus.secondary_key),
    }
    made = {
        name: ServiceBusSdks(
            ServiceBusApi("sync", connection, servicebus.queues, _servicebus_runner),
            ServiceBusApi("aio", connection, _fresh_servicebus_queues(), _servicebus_runner),
        )
        for name, connection in variants.items()
    }
    yield made
    for sdks in made.values():
        sdks.sync.close_later()
        sdks.aio.close_later()


async def test_a_token_signed_with_a_wrong_key_is_refused(sdks_with_key: dict[str, ServiceBusSdks]) -> None:
    """A connection string with an unknown key name or a wrong key: the put-token is answered 401 and
    the SDK raises ServiceBusAuthenticationError; nothing is sent."""

    async def scenario(sb: ServiceBusApi) -> None:
        with pytest.raises(ServiceBusAuthenticationError) as raised:
            await sb.sender(sb.queues.queue, client_options=_NO_RETRY)
        assert getattr(raised.value.inner_exception, "status_code", None) == 401  # the $cbs reply

    await asyncio.gather(
        *(sdks_with_key[variant].run(scenario) for variant in ("wrong key name", "wrong key"))
    )


async def test_a_declared_key_works(sdks_with_key: dict[str, ServiceBusSdks]) -> None:
    """A key given with --shared-access-key sends and receives, as the development emulator's well-known
    key (RootManageSharedAccessKey=SAS_KEY_VALUE, Microsoft's "Test locally by using the Azure Service
    Bus emulator") does in every other test."""

    async def scenario(sb: ServiceBusApi) -> None:
        sender, receiver = await asyncio.gather(sb.sender(sb.queues.queue), sb.receiver(sb.queues.queue))
        await sender.send_messages(ServiceBusMessage("signed"))
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "signed"
        await receiver.complete_message(message)

    await sdks_with_key["secondary key"].run(scenario)


def _without_token(client_class: type[SendClient | ReceiveClient], url: str, queue: str) -> AMQPLinkError:
    """Attach a link with the SDK's own AMQP client (``azure.servicebus._pyamqp``) and no CBS at all:
    the public client always puts a token first, so its engine is driven directly."""
    host_port = url.removeprefix("sb://")
    no_cbs = types.SimpleNamespace(sasl=SASLAnonymousCredential(), auth_type=None)
    client: Any = client_class(host_port, f"amqps://{host_port}/{queue}", use_tls=False, auth=no_cbs)
    try:
        client.open()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if isinstance(client, SendClient):
                client.send_message(Message(data=[b"no token"]))
            else:
                client.receive_message_batch(max_batch_size=1, timeout=0.2)
        pytest.fail("the link was not refused")
    except AMQPLinkError as refused:
        return refused
    finally:
        client.close()


@pytest.mark.parametrize(("client_class", "claim"), [(SendClient, "Send"), (ReceiveClient, "Listen")])
def test_a_client_that_puts_no_token_is_refused(
    servicebus: ServiceBusHandle, client_class: type[SendClient | ReceiveClient], claim: str
) -> None:
    """Without a token on $cbs the link is refused with amqp:unauthorized-access naming the claim it
    lacks; the SDK raises that as ServiceBusAuthorizationError. The queue gets nothing."""
    refused = _without_token(client_class, servicebus.url, servicebus.queues.queue)
    assert refused.condition == ErrorCondition.UnauthorizedAccess
    assert f"'{claim}' claim(s) are required to perform this operation" in str(refused.description)
    raised = PyamqpTransport.create_servicebus_exception(logging.getLogger(__name__), refused)
    assert isinstance(raised, ServiceBusAuthorizationError)


def test_a_token_is_checked_for_signature_key_and_expiry() -> None:
    """The rules on their own: a token names its key, is signed over its resource and expiry, expires;
    it covers the resource named and everything under it."""
    keys = Keys([("Sender", "c2VjcmV0")])
    now = 1_000_000.0
    resource = "sb://127.0.0.1:5672/orders"
    sign: Any = generate_sas_token  # the SDK's own signer (untyped)
    token = sign(resource, "Sender", "c2VjcmV0", int(now) + 60)
    assert keys.check(token, now) == ("orders", now + 60)
    assert keys.check(sign(resource, "RootManageSharedAccessKey", "SAS_KEY_VALUE", 2e6), now)
    refusals = {
        "InvalidSignature": sign(resource, "Sender", "b3RoZXI=", int(now) + 60),
        "InvalidSignature: The token": sign(resource, "Nobody", "c2VjcmV0", int(now) + 60),
        "ExpiredToken": sign(resource, "Sender", "c2VjcmV0", int(now) - 1),
        "InvalidToken": "Bearer eyJ0eXAiOiJKV1QifQ",
    }
    for reason, bad in refusals.items():
        with pytest.raises(TokenRefused, match=reason):
            keys.check(bad, now)
    grants = Grants()
    grants.add("orders", now + 60)
    assert grants.allow("Orders/$DeadLetterQueue", now)
    assert not grants.allow("orders-2", now)
    assert not grants.allow("orders", now + 61)
