"""Writing an answer onto the wire, and breaking it where a mid-stream fault says.

:meth:`~.base.Simulator.stream` and :meth:`~.base.Simulator.send_json` build the response
(headers, content type) and hand the writing over to this module. The provider modules never
call it directly: they pass their wire format's frames (SSE events, JSON array elements, AWS
event-stream messages) to ``Simulator.stream`` and the in-stream error frame to emit.

Every frame goes through ``StreamResponse.write``, which waits for the transport to drain, so a
slow client slows the simulator down as a real provider would. The mid-stream fault kinds of
:mod:`.faults` are applied here: ``invalid_json`` and ``in_stream_error`` replace the rest of
the answer with a garbled or an error frame; ``stall_mid_stream`` holds the connection open and
silent (through the ``hold`` callback, which returns when the client goes away or the simulator
stops); ``reset_mid_stream`` flushes what was written, then aborts the transport. A client that
goes away mid-answer is not an error.

:func:`write_hostile` writes the answers of the hostile fault kinds (``redirect``, ``raw``,
``flood``), which replace the provider's answer altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from .faults import Fault

__all__ = ["Hold", "break_connection", "write_frames", "write_hostile", "write_json_with_fault"]

Hold = Callable[[web.Request], Awaitable[None]]
"""Waits, silent, until the client of the request goes away or the simulator stops."""


async def write_frames(
    request: web.Request,
    resp: web.StreamResponse,
    *,
    preamble: Sequence[bytes],
    chunks: Sequence[bytes],
    epilogue: Sequence[bytes],
    error_event: Callable[[Fault], bytes],
    garbled: bytes,
    fault: Fault | None,
    interval: float,
    hold: Hold,
) -> None:
    """Write the frames of a prepared ``resp``, applying the mid-stream ``fault`` if any.

    ``preamble`` frames go first, then the ``chunks`` (content deltas, ``interval`` seconds
    apart), then the ``epilogue``. With no interval and no fault everything goes out in one
    write.
    """
    try:
        if fault is None and interval <= 0:
            await resp.write(b"".join((*preamble, *chunks, *epilogue)))
            await resp.write_eof()
            return
        if preamble:
            await resp.write(b"".join(preamble))
        limit = len(chunks) if fault is None else min(fault.after_chunks, len(chunks))
        for i in range(limit):
            if i and interval > 0:
                await asyncio.sleep(interval)
            await resp.write(chunks[i])
        if fault is None:
            await resp.write(b"".join(epilogue))
            await resp.write_eof()
        elif fault.kind == "invalid_json":
            await resp.write(garbled)
            await resp.write_eof()
        elif fault.kind == "in_stream_error":
            await resp.write(error_event(fault))
            await resp.write_eof()
        else:
            await break_connection(request, fault, hold)
    except ConnectionError:  # the client went away; nothing left to do
        pass


async def write_json_with_fault(
    request: web.Request,
    body: bytes,
    *,
    status: int,
    headers: Mapping[str, str],
    fault: Fault,
    hold: Hold,
) -> web.StreamResponse:
    """A non-streamed JSON answer broken by an ``invalid_json``, stall or reset ``fault``.

    ``invalid_json`` gives a complete answer whose body is cut and garbled; a stall or a reset
    sends the headers (with the full length) and the first half of the body, then breaks.
    """
    if fault.kind == "invalid_json":
        return web.Response(
            status=status,
            body=body[: len(body) // 2] + b"<garbled",
            content_type="application/json",
            headers=headers,
        )
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type = "application/json"
    resp.content_length = len(body)
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        await resp.write(body[: len(body) // 2])
        await break_connection(request, fault, hold)
    return resp


async def break_connection(request: web.Request, fault: Fault, hold: Hold) -> None:
    """Stall (hold the connection open, silent) or reset (abort the transport)."""
    transport = request.transport
    if fault.kind == "stall_mid_stream":
        await hold(request)
    elif transport is not None:
        # let the chunks already written reach the socket before cutting it
        deadline = time.monotonic() + 1.0
        # (no event tells when an asyncio transport's buffer empties: poll it briefly)
        while transport.get_write_buffer_size() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    transport = request.transport
    if transport is not None:
        transport.abort()


FLOOD_BLOCK = 1024 * 1024


async def write_hostile(
    request: web.Request, fault: Fault, headers: Mapping[str, str], stopping: asyncio.Event
) -> web.StreamResponse:
    """The answer of a ``redirect``, ``raw`` or ``flood`` fault (see :mod:`.faults`)."""
    if fault.kind == "redirect":
        assert fault.location is not None  # checked by Fault
        return web.Response(
            status=fault.status or 307, headers={**headers, "Location": fault.location}
        )
    if fault.kind == "raw":
        write_raw(request, fault.status or 200, fault.headers, fault.body or b"")
        return web.Response(status=204)  # never sent: the connection is closed
    return await _flood(request, fault, headers, stopping)


def write_raw(
    request: web.Request, status: int, headers: Iterable[tuple[str, str]], body: bytes
) -> None:
    """Exactly this answer on the wire (aiohttp would add a content type), then close.

    Only ``Content-Length`` and ``Connection: close`` are added to ``headers``.
    """
    transport = request.transport
    if transport is None:
        return
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    transport.write("\r\n".join(lines).encode("latin-1") + body)
    transport.close()


async def _flood(
    request: web.Request, fault: Fault, headers: Mapping[str, str], stopping: asyncio.Event
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=headers)
    resp.content_type = fault.content_type
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if fault.encoding == "gzip" else None
    if gzip is not None:
        resp.headers["Content-Encoding"] = "gzip"
    await resp.prepare(request)
    block = fault.fill * max(1, FLOOD_BLOCK // len(fault.fill))
    remaining = fault.size

    def gone() -> bool:
        transport = request.transport
        return stopping.is_set() or transport is None or transport.is_closing()

    async def send(piece: bytes, last: bool = False) -> None:
        if gzip is not None:
            piece = gzip.compress(piece) + gzip.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
        await resp.write(piece)

    with contextlib.suppress(ConnectionError):
        if fault.body:
            await send(fault.body)
        while (remaining is None or remaining > 0) and not gone():
            piece = block if remaining is None or remaining >= len(block) else block[:remaining]
            if remaining is not None:
                remaining -= len(piece)
            await send(piece)
            # A compressed block is small enough for the socket to take at once, so the
            # write does not suspend: let the rest of the loop (maybe the client) run.
            await asyncio.sleep(0)
        if not gone():
            await send(b"", last=True)
            await resp.write_eof()
    return resp


def sse(obj: Any) -> bytes:
    """One unnamed SSE event carrying ``obj`` as JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def named_sse(event: str, obj: Any) -> bytes:
    """One named SSE event (used by the Responses API)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
