"""A bare :class:`~aiguillage.sidecar.httpserver.Server` on loopback, for tests that talk
to it over raw sockets (``asyncio.open_connection``, see :mod:`._raw`), byte for byte, so
what they check is what any client would see.
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
