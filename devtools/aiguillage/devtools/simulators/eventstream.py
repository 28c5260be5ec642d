"""AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

A message is laid out as::

    [total length: u32][headers length: u32][prelude CRC: u32]
    [headers...][payload...][message CRC: u32]

big-endian, where the prelude CRC is the CRC-32 of the first 8 bytes and the message CRC the
CRC-32 of everything before it. A header is ``[name length: u8][name][type: u8][value]``; the
value of a string (type 7) or byte-array (type 6) header is ``[length: u16][bytes]``.

Bedrock Runtime events carry ``:event-type`` (the union member, e.g. ``contentBlockDelta``),
``:content-type: application/json`` and ``:message-type: event``; modelled exceptions carry
``:exception-type`` (e.g. ``throttlingException``) and ``:message-type: exception``.

This module encodes messages (no encoder ships with botocore) and decodes them, checking both
CRCs, so tests can read what the simulator writes without botocore.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["EventStreamDecoder", "EventStreamError", "EventStreamMessage", "encode_message"]

HeaderValue = str | bytes | bool | int

_PRELUDE: Final = struct.Struct(">II")
_U32: Final = struct.Struct(">I")
_MAX_HEADERS: Final = 128 * 1024
_MAX_PAYLOAD: Final = 16 * 1024 * 1024


class EventStreamError(ValueError):
    """Malformed event-stream data (bad length or CRC, unknown header type)."""


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    if len(raw_name) > 255:
        raise ValueError(f"header name too long: {name!r}")
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return head + b"\x04" + struct.pack(">i", value)
        return head + b"\x05" + struct.pack(">q", value)
    if isinstance(value, str):
        data, kind = value.encode(), 7
    else:
        data, kind = bytes(value), 6
    if len(data) > 0xFFFF:
        raise ValueError(f"header value too long: {name!r}")
    return head + bytes([kind]) + struct.pack(">H", len(data)) + data


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One complete event-stream message."""
    raw_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + 4 + len(raw_headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(raw_headers))
    prelude += _U32.pack(zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + _U32.pack(zlib.crc32(message))


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """A decoded message."""

    headers: dict[str, HeaderValue]
    payload: bytes


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    i = 0
    try:
        while i < len(data):
            size = data[i]
            name = data[i + 1 : i + 1 + size].decode()
            i += 1 + size
            kind = data[i]
            i += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind == 2:
                value = struct.unpack_from(">b", data, i)[0]
                i += 1
            elif kind == 3:
                value = struct.unpack_from(">h", data, i)[0]
                i += 2
            elif kind == 4:
                value = struct.unpack_from(">i", data, i)[0]
                i += 4
            elif kind in (5, 8):
                value = struct.unpack_from(">q", data, i)[0]
                i += 8
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2 : i + 2 + length]
                i += 2 + length
                value = raw.decode() if kind == 7 else raw
            elif kind == 9:
                value = data[i : i + 16]
                i += 16
            else:
                raise EventStreamError(f"unknown header type {kind}")
            if name in headers:
                raise EventStreamError(f"duplicate header {name!r}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError("truncated or malformed headers") from exc
    return headers


class EventStreamDecoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, get whole messages back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        self._buffer += data
        return list(self._drain())

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole message yet."""
        return len(self._buffer)

    def _drain(self) -> Iterator[EventStreamMessage]:
        buf = self._buffer
        while len(buf) >= 12:
            total, headers_len = _PRELUDE.unpack_from(buf, 0)
            (prelude_crc,) = _U32.unpack_from(buf, 8)
            if zlib.crc32(bytes(buf[:8])) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch")
            if (
                headers_len > _MAX_HEADERS
                or total - headers_len - 16 > _MAX_PAYLOAD
                or total < 16 + headers_len
            ):
                raise EventStreamError("invalid message lengths")
            if len(buf) < total:
                return
            message = bytes(buf[:total])
            del buf[:total]
            (crc,) = _U32.unpack_from(message, total - 4)
            if zlib.crc32(message[:-4]) != crc:
                raise EventStreamError("message CRC mismatch")
            yield EventStreamMessage(
                _decode_headers(message[12 : 12 + headers_len]),
                message[12 + headers_len : total - 4],
            )
