"""A chat-completions endpoint on loopback for the load generators' tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def chat_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` at POST /v1/chat/completions; yield that URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/v1/chat/completions"))
    finally:
        await server.close()
