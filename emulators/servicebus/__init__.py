"""A local Azure Service Bus: queues over AMQP 1.0 for the real ``azure-servicebus`` SDK (sync and aio).

Run it with ``python -m emulators.servicebus --port 0 --queue orders:lockDuration=5``; it prints
``Service Bus emulator listening on sb://127.0.0.1:PORT``. Point the SDK at ``connection_string(url)``.
State is in memory; queues exist only if declared (``--queue``, ``--config``: see ``_config``).
Clients authenticate as in Azure, with a SAS token on ``$cbs`` signed with the development emulator's
well-known key (or one given with ``--shared-access-key``): see ``_auth``. What is and is not emulated:
docs/emulators.md, the Service Bus emulator.

Modules: ``_config`` (queue declarations), ``_amqp`` (message sections as bytes), ``_message`` (a
stored message and its wire form), ``_entity`` (queues, locks, schedules, dead letters: the rules, no
I/O), ``_auth`` (SAS tokens and what they grant), ``_management`` (``$cbs`` and ``$management``),
``_links`` (what an attached link is for),
``_broker`` (the proton handler), ``_server`` (socket, SASL, the loop, signals).

For fault tests: ``rejectSendRate`` refuses a share of a queue's sends and ``stallSendRate`` leaves a share
unanswered (``_config``, ``_broker``); SIGUSR1
drops every connection and ``EMULATOR_CANARY`` watches the received bytes (``_server``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from emulators.servicebus._config import QueueSettings

__all__ = ["QueueSettings", "connection_string"]


def connection_string(url: str) -> str:
    """``sb://127.0.0.1:PORT`` -> the connection string the SDK (and the Functions host) accept.

    ``UseDevelopmentEmulator=true`` makes the SDK use plain TCP on the given port; the key is the
    well-known key of Microsoft's development emulator, which this emulator always accepts.
    """
    parts = urlsplit(url)
    if parts.scheme != "sb" or not parts.hostname or not parts.port:
        raise ValueError(f"expected sb://host:port, got {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return (
        f"Endpoint=sb://{host}:{parts.port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
