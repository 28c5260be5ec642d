"""One HTTP request as a handler sees it: method, path, headers, and its body to read.

The body arrives from the connection (:mod:`.protocol`) while the handler runs: :meth:`read`
waits for all of it. A body larger than the server's limit is not kept: :meth:`read` raises
:class:`BodyTooLarge` as soon as that is known (from ``Content-Length``, or once the bytes
received pass it), and the rest is dropped as it arrives.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiguillage.sidecar.httpserver.headers import Headers

if TYPE_CHECKING:
    from aiguillage.sidecar.httpserver.protocol import HttpProtocol


class BodyTooLarge(Exception):
    """The request body is larger than the server accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit


class MalformedBody(Exception):
    """The request body's framing is broken (a bad chunk size, say): it cannot be read."""


class Request:
    """A request being served (its body possibly still arriving)."""

    __slots__ = (
        "_chunks",
        "_complete",
        "_error",
        "_size",
        "_too_large",
        "_waiter",
        "conn",
        "content_length",
        "continue_sent",
        "headers",
        "keep_alive",
        "match_info",
        "method",
        "path",
        "query_string",
        "version",
    )

    def __init__(
        self,
        conn: HttpProtocol,
        method: str,
        path: str,
        query_string: str,
        version: str,
        headers: Headers,
        keep_alive: bool,
        content_length: int | None,
    ) -> None:
        self.conn = conn
        self.method = method
        self.path = path
        self.query_string = query_string
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive  # what the client asked (HTTP version, Connection)
        self.content_length = content_length
        self.match_info: dict[str, str] = {}
        self.continue_sent = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._complete = False
        self._too_large = content_length is not None and content_length > conn.max_body
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters (HTTP's default,
        ``application/octet-stream``, when the request names none)."""
        raw = self.headers.get("content-type")
        if raw is None:
            return "application/octet-stream"
        return raw.partition(";")[0].strip().lower()

    @property
    def body_complete(self) -> bool:
        return self._complete

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop serving the request (asking it of asyncio costs a system call on
        Python 3.11: see :mod:`aiguillage.sidecar.deadline`)."""
        return self.conn.loop

    async def read(self) -> bytes:
        """The whole body; :class:`BodyTooLarge` past the server's limit, ConnectionResetError
        when the client goes away first."""
        if self._too_large:
            raise BodyTooLarge(self.conn.max_body)
        if not self._complete and self._error is None:
            self.conn.continue_if_expected(self)
            waiter = self._waiter = self.conn.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self._too_large:
            raise BodyTooLarge(self.conn.max_body)
        if self._error is not None:
            raise self._error
        chunks = self._chunks
        if len(chunks) != 1:
            self._chunks = chunks = [b"".join(chunks)]
        return chunks[0]

    # -- fed by the connection ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._too_large:
            return  # dropped: the handler answers 413
        self._size += len(data)
        if self._size > self.conn.max_body:
            self._too_large = True
            self._chunks = []
            self._wake()
            return
        self._chunks.append(data)

    def end(self) -> None:
        self._complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"
