"""A bare :class:`~aiguillage.sidecar.httpserver.Server` on loopback, and a raw HTTP/1.1 reader.

The tests talk to it over raw sockets (``asyncio.open_connection``), byte for byte, so what
they check is what any client would see; answers are read with :func:`read_answer`, a small
parser of its own (not the server's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from aiguillage.sidecar.httpserver import (
    BodyTooLarge,
    MalformedBody,
    Request,
    Response,
    Router,
    Server,
    StreamResponse,
)

# Generous: the machine is shared; nothing here waits this long when the code works.
WITHIN = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    interim: list[int] = field(default_factory=list)


async def read_answer(reader: asyncio.StreamReader, head_request: bool = False) -> Answer:
    """One answer: status line, headers, then the body as its framing says (Content-Length,
    chunked, or up to the connection's end). Interim 1xx answers are collected and skipped."""
    interim: list[int] = []
    while True:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                assert name.lower() not in headers, f"header {name} sent twice"
                headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    if head_request:
        return Answer(status, headers, b"", interim)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WITHIN)
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), WITHIN))[:-2], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), WITHIN)
            assert chunk[-2:] == b"\r\n"
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), WITHIN)
    return Answer(status, headers, body, interim)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (nothing more to read)."""
    try:
        return await asyncio.wait_for(reader.read(), WITHIN) == b""
    except ConnectionResetError:
        return True


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, *headers: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Running:
    server: Server
    port: int
    # What the handlers saw, for the tests to check.
    events: list[str] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def echo(request: Request) -> StreamResponse:
    """The body back, with what the server made of the request in headers."""
    try:
        body = await request.read()
    except BodyTooLarge:
        return Response(413, text="too large")
    except MalformedBody:
        return Response(400, text="malformed body")
    return Response(
        200,
        body,
        headers={
            "x-method": request.method,
            "x-path": request.path,
            "x-query": request.query_string,
            "x-content-type": request.content_type,
            "x-connection": str(id(request.conn)),
        },
    )


Start = Callable[..., Awaitable[Running]]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Each test here runs on asyncio's own loop and on uvloop (the sidecar's, whose
    transports differ in buffering and in when they report a closed connection)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``await start(routes={...}, **server_options)``: a server with the echo handler on
    ``/echo`` plus ``routes`` (path -> handler, any method), stopped when the test ends."""
    servers: list[Server] = []

    async def run(
        routes: dict[str, Callable[[Request], Awaitable[StreamResponse]]] | None = None,
        **options: Any,
    ) -> Running:
        router = Router()
        for method in ("GET", "POST", "HEAD"):
            router.add(method, "/echo", echo)
            for path, handler in (routes or {}).items():
                router.add(method, path, handler)
        server = Server(router, **options)
        servers.append(server)
        port = await server.start("127.0.0.1", 0)
        return Running(server, port)

    yield run
    for server in servers:
        await server.close()
