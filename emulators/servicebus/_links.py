"""What a link is for, decided from its address when the client attaches it.

| client link | address | role here |
|---|---|---|
| sender | ``<queue>`` | producer: each transfer (or each message of a batch) enqueued, ``accepted`` |
| receiver | ``<queue>``, ``<queue>/$DeadLetterQueue`` | consumer: gets messages while it has credit |
| sender + receiver | ``$cbs``, ``<entity>/$management`` | requests, and the link their answers go on |

An address naming no declared queue gets ``amqp:not-found`` (the SDK: ``MessagingEntityNotFoundError``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from proton import Condition, Link, symbol

from emulators.servicebus._entity import Entity, Namespace

__all__ = ["Kind", "LinkRole", "amqp_error", "entity_path", "role_for", "role_of"]

_CBS = "$cbs"
_MANAGEMENT_SUFFIX = "/$management"


class Kind(Enum):
    PRODUCER = "producer"
    CONSUMER = "consumer"
    REQUESTS = "requests"
    REPLIES = "replies"


@dataclass(frozen=True)
class LinkRole:
    kind: Kind
    node: str  # entity path, "$cbs", or "<entity>/$management"
    entity: Entity | None = None
    presettled: bool = False  # a receive-and-delete consumer


def entity_path(address: str | None) -> str:
    """``amqps://host:5672/Orders/$management`` -> ``orders/$management`` (entity names ignore case)."""
    path = address or ""
    if "://" in path:
        path = path.split("://", 1)[1].partition("/")[2]
    return path.strip("/").lower()


def amqp_error(condition: str, description: str) -> Condition:
    """An AMQP error as Service Bus sends it: with a tracking id in its info (the SDK's sender reads
    all three fields of a rejection's error, and proton leaves out an empty info map)."""
    return Condition(condition, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def role_for(namespace: Namespace, link: Link) -> LinkRole | Condition:
    """The role of a link the client attaches, or the error to refuse it with."""
    incoming = link.is_receiver  # the client sends on it
    terminus = link.remote_target if incoming else link.remote_source
    path = entity_path(terminus.address)
    node_kind = Kind.REQUESTS if incoming else Kind.REPLIES
    if path == _CBS:
        return LinkRole(node_kind, path)
    entity_part = path.removesuffix(_MANAGEMENT_SUFFIX)
    entity = namespace.entity(entity_part)
    if entity is None:
        return amqp_error("amqp:not-found", f"The messaging entity '{entity_part}' could not be found.")
    if entity_part != path:
        return LinkRole(node_kind, path, entity)
    if not incoming:
        return LinkRole(Kind.CONSUMER, path, entity, link.remote_snd_settle_mode == Link.SND_SETTLED)
    if entity.is_dead_letter_queue:
        return amqp_error("amqp:not-allowed", f"cannot send to the dead-letter queue '{path}'")
    return LinkRole(Kind.PRODUCER, path, entity)


def role_of(link: Link) -> LinkRole | None:
    """The role given at attach. (proton keeps attributes set on its wrappers with the C object, so a
    role lives exactly as long as its link.)"""
    role = getattr(link, "sb_role", None)
    return role if isinstance(role, LinkRole) else None
