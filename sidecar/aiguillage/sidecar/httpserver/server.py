"""The listening side: accept connections, serve them, drain and close them.

:meth:`Server.start` listens (``reuse_address``, a backlog of 1024) and returns the bound
port (the port asked for, or the one the system chose for port 0). :meth:`Server.shutdown`
stops accepting and closes idle keep-alive connections at once; a busy connection closes
after its current answer. :meth:`Server.close` ends whatever is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiguillage.sidecar.httpserver.protocol import HttpProtocol
from aiguillage.sidecar.httpserver.response import Response, encode_head
from aiguillage.sidecar.httpserver.router import Router

BACKLOG = 1024
IDLE_SECONDS = 30.0
LINGER_SECONDS = 2.0
MAX_BODY = 16 * 1024 * 1024


def plain_error(status: int, message: str) -> Response:
    return Response(status, text=message + "\n")


class Server:
    """One listener and its connections.

    ``error_response`` builds the answers the server itself gives (400 for what is not
    HTTP, 431, 500 from a failed handler) in the shape the clients expect."""

    def __init__(
        self,
        router: Router,
        *,
        max_body: int = MAX_BODY,
        idle_timeout: float = IDLE_SECONDS,
        linger: float = LINGER_SECONDS,
        error_response: Callable[[int, str], Response] = plain_error,
    ) -> None:
        self.router = router
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.linger = linger
        self.error_response = error_response
        self.connections: set[HttpProtocol] = set()
        self._listener: asyncio.AbstractServer | None = None
        self.loop: asyncio.AbstractEventLoop

    encode_head = staticmethod(encode_head)

    async def start(
        self, host: str, port: int, backlog: int = BACKLOG, reuse_address: bool = True
    ) -> int:
        self.loop = asyncio.get_running_loop()
        self._listener = await self.loop.create_server(
            lambda: HttpProtocol(self), host, port, backlog=backlog, reuse_address=reuse_address
        )
        return int(self._listener.sockets[0].getsockname()[1])

    def shutdown(self) -> None:
        """Stop accepting; idle connections close now, busy ones after their answer."""
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            conn.shutdown()

    async def close(self, wait: float = 1.0) -> None:
        """Stop accepting and close every connection; requests still served are cancelled
        (their handlers get up to ``wait`` seconds to finish)."""
        self.shutdown()
        tasks = []
        for conn in list(self.connections):
            task = conn.task
            conn.abort()
            if task is not None:
                tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=wait)
        self.connections.clear()
        self._listener = None
