"""AMQP 1.0 message bytes, handled at the section level: split, inspect, and re-assemble.

A stored message keeps the client's properties, application-properties, body and footer as the exact
bytes it sent; only the header and message annotations are written afresh for each delivery. That keeps
every type the client chose and costs a few slices per message. The few values the broker reads
(``message_id``, a time to live, annotations) are decoded on their own, with proton's ``Data`` where a
whole map is needed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proton import Data, Described, ulong

__all__ = [
    "AmqpDecodeError",
    "Sections",
    "decode_value",
    "encode_annotations",
    "encode_header",
    "encode_map_section",
    "encode_value",
    "int_value",
    "long_value",
    "map_entries",
    "message_id",
    "split_batch",
    "split_sections",
    "string_value",
    "symbol",
    "timestamp_value",
    "uuid_value",
]

HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES, APPLICATION_PROPERTIES = range(0x70, 0x75)
DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER = range(0x75, 0x79)
_SYMBOLIC_DESCRIPTORS = {
    b"amqp:header:list": HEADER,
    b"amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    b"amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    b"amqp:properties:list": PROPERTIES,
    b"amqp:application-properties:map": APPLICATION_PROPERTIES,
    b"amqp:data:binary": DATA,
    b"amqp:amqp-sequence:list": AMQP_SEQUENCE,
    b"amqp:amqp-value:*": AMQP_VALUE,
    b"amqp:footer:map": FOOTER,
}
# Width of a fixed-size value by the high nibble of its constructor (0x40 null ... 0x98 uuid).
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}


class AmqpDecodeError(ValueError):
    """The bytes are not a well-formed AMQP message."""


def _value_end(buf: bytes, pos: int) -> int:
    """Offset just past the encoded value starting at ``pos``."""
    if pos >= len(buf):
        raise AmqpDecodeError("truncated value")
    code = buf[pos]
    if code == 0x00:  # described: descriptor, then the value
        return _value_end(buf, _value_end(buf, pos + 1))
    kind = code >> 4
    width = _FIXED_WIDTH.get(kind)
    if width is not None:
        end = pos + 1 + width
    elif kind in (0xA, 0xC, 0xE):
        end = pos + 2 + buf[pos + 1] if pos + 1 < len(buf) else len(buf) + 1
    elif kind in (0xB, 0xD, 0xF):
        end = pos + 5 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
    else:
        raise AmqpDecodeError(f"unknown constructor 0x{code:02x}")
    if end > len(buf):
        raise AmqpDecodeError("truncated value")
    return end


def _descriptor(buf: bytes, pos: int) -> tuple[int, int]:
    """(section code, offset of the section's value) for a described section at ``pos``."""
    if buf[pos] != 0x00:
        raise AmqpDecodeError("a message section must be a described type")
    code = buf[pos + 1] if pos + 1 < len(buf) else -1
    if code == 0x53:
        return buf[pos + 2], pos + 3
    if code == 0x80:
        return int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
    if code in (0xA3, 0xB3):
        end = _value_end(buf, pos + 1)
        name = bytes(buf[pos + 3 : end] if code == 0xA3 else buf[pos + 6 : end])
        return _SYMBOLIC_DESCRIPTORS.get(name, -1), end
    raise AmqpDecodeError("unsupported section descriptor")


@dataclass(frozen=True, slots=True)
class Sections:
    """Offsets of one message's sections: ``spans[code] = (start, end)``; bodies may repeat."""

    payload: bytes
    spans: dict[int, tuple[int, int]]
    bodies: list[tuple[int, int, int]]  # (code, start, end) of every body section, in order

    def raw(self, code: int) -> bytes:
        span = self.spans.get(code)
        return self.payload[span[0] : span[1]] if span else b""

    def value(self, code: int) -> Any:
        """The decoded value of one section (a list or dict), or None when absent."""
        raw = self.raw(code)
        if not raw:
            return None
        described = decode_value(raw)
        return described.value if isinstance(described, Described) else described


def split_sections(payload: bytes) -> Sections:
    """Find every section of an encoded message; raises ``AmqpDecodeError`` on malformed bytes."""
    spans: dict[int, tuple[int, int]] = {}
    bodies: list[tuple[int, int, int]] = []
    pos = 0
    size = len(payload)
    while pos < size:
        code, value_at = _descriptor(payload, pos)
        end = _value_end(payload, value_at)
        if not HEADER <= code <= FOOTER:
            raise AmqpDecodeError(f"unknown message section 0x{code:x}")
        if DATA <= code <= AMQP_VALUE:
            bodies.append((code, pos, end))
        elif code in spans:
            raise AmqpDecodeError(f"section 0x{code:x} repeated")
        else:
            spans[code] = (pos, end)
        pos = end
    return Sections(payload, spans, bodies)


def _binary_content(payload: bytes, start: int, end: int) -> bytes:
    """The bytes inside a ``data`` section spanning ``start:end``."""
    _, value_at = _descriptor(payload, start)
    header = 2 if payload[value_at] == 0xA0 else 5
    return payload[value_at + header : end]


def split_batch(sections: Sections) -> list[bytes] | None:
    """The messages inside an SDK batch envelope, or None when ``sections`` is an ordinary message.

    The SDK marks a batch with message-format 0x80013700, which proton 0.40's Python binding does not
    expose; so a batch is recognised by its shape: no application properties, and every body section is
    a ``data`` section that itself holds a complete encoded message.
    """
    if APPLICATION_PROPERTIES in sections.spans or not sections.bodies:
        return None
    inner: list[bytes] = []
    for code, start, end in sections.bodies:
        if code != DATA:
            return None
        content = _binary_content(sections.payload, start, end)
        try:
            parsed = split_sections(content)
        except (AmqpDecodeError, IndexError):
            return None
        if not parsed.bodies:
            return None
        inner.append(content)
    return inner


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _identity(raw: bytes) -> bytes:
    return raw


def _uuid(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)


def _unsigned(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


# message-id constructors: (bytes before the value, conversion). Anything else is kept as raw bytes.
_ID_TYPES: dict[int, tuple[int, Callable[[bytes], Any]]] = {
    0xA1: (2, _text),  # str8
    0xB1: (5, _text),  # str32
    0xA3: (2, _text),  # sym8
    0xB3: (5, _text),  # sym32
    0xA0: (2, _identity),  # vbin8
    0xB0: (5, _identity),  # vbin32
    0x98: (1, _uuid),
    0x80: (1, _unsigned),  # ulong
    0x53: (1, _unsigned),  # smallulong
    0x44: (1, _unsigned),  # ulong0
}


def message_id(sections: Sections) -> Any:
    """The ``message-id`` property (str, bytes, UUID or int), or None; read without decoding the list."""
    span = sections.spans.get(PROPERTIES)
    if span is None:
        return None
    buf = sections.payload
    _, pos = _descriptor(buf, span[0])
    if buf[pos] == 0xC0:
        count, pos = buf[pos + 2], pos + 3
    elif buf[pos] == 0xD0:
        count, pos = int.from_bytes(buf[pos + 5 : pos + 9], "big"), pos + 9
    else:
        return None  # list0: no properties at all
    if count == 0 or buf[pos] == 0x40:
        return None
    end = _value_end(buf, pos)
    skip, convert = _ID_TYPES.get(buf[pos], (0, _identity))
    return convert(bytes(buf[pos + skip : end]))


def decode_value(raw: bytes) -> Any:
    """One encoded AMQP value as Python objects (proton's types: ``symbol``, ``timestamp``...)."""
    data = Data()
    data.decode(raw)
    data.rewind()
    data.next()
    return data.get_object()


def encode_value(value: Any) -> bytes:
    data = Data()
    data.put_object(value)
    return data.encode()


def encode_map_section(code: int, entries: dict[Any, Any]) -> bytes:
    """A described map section (e.g. application-properties) from a dict, via proton."""
    return encode_value(Described(ulong(code), entries))


def map_entries(mapping: dict[Any, Any]) -> tuple[bytes, int]:
    """(encoded key/value pairs, element count) of a map, to splice into another map."""
    if not mapping:
        return b"", 0
    raw = encode_value(mapping)
    if raw[0] == 0xC1:
        return raw[3:], raw[2]
    return raw[9:], int.from_bytes(raw[5:9], "big")


# Small encoders for the values the broker writes on every delivery.
def symbol(name: str) -> bytes:
    encoded = name.encode("ascii")
    return bytes((0xA3, len(encoded))) + encoded


def long_value(value: int) -> bytes:
    return b"\x81" + value.to_bytes(8, "big", signed=True)


def timestamp_value(milliseconds: int) -> bytes:
    return b"\x83" + milliseconds.to_bytes(8, "big", signed=True)


def uuid_value(value: uuid.UUID) -> bytes:
    return b"\x98" + value.bytes


def int_value(value: int) -> bytes:
    return b"\x71" + value.to_bytes(4, "big", signed=True)


def string_value(text: str) -> bytes:
    encoded = text.encode("utf-8")
    if len(encoded) < 256:
        return bytes((0xA1, len(encoded))) + encoded
    return b"\xb1" + len(encoded).to_bytes(4, "big") + encoded


def _optional_bool(value: bool | None) -> bytes:
    return b"\x40" if value is None else (b"\x41" if value else b"\x42")


def encode_header(
    *, durable: bool | None, priority: int | None, ttl_ms: int | None, delivery_count: int
) -> bytes:
    """The header section: durable, priority, ttl, first-acquirer, delivery-count."""
    fields = b"".join(
        (
            _optional_bool(durable),
            b"\x40" if priority is None else bytes((0x50, priority)),
            b"\x40" if ttl_ms is None else b"\x70" + ttl_ms.to_bytes(4, "big"),
            _optional_bool(delivery_count == 0),
            b"\x70" + delivery_count.to_bytes(4, "big"),
        )
    )
    return bytes((0x00, 0x53, HEADER, 0xC0, len(fields) + 1, 5)) + fields


def encode_annotations(entries: bytes, count: int) -> bytes:
    """A message-annotations section around already encoded key/value pairs (``count`` elements)."""
    return (
        bytes((0x00, 0x53, MESSAGE_ANNOTATIONS, 0xD1))
        + (len(entries) + 4).to_bytes(4, "big")
        + count.to_bytes(4, "big")
        + entries
    )
