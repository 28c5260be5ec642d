"""Answers: :class:`Response` (a whole body, sent in one write with its head) and
:class:`StreamResponse` (a head, then pieces as they come: chunked transfer-encoding).

The head (status line and headers) is built once, as bytes, when the answer starts. The
connection (:mod:`.protocol`) decides its framing: ``Connection: close`` when it will not
serve another request, ``Content-Length`` for whole bodies, chunks for streams (or the
connection's end, for an HTTP/1.0 client), no body at all for ``HEAD``.

Writing to a connection the client closed raises ``ConnectionResetError``; a write waits
only while the connection's send buffer is above its high-water mark (backpressure).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiguillage.sidecar.httpserver.protocol import HttpProtocol
    from aiguillage.sidecar.httpserver.request import Request

_BREAKS = frozenset("\r\n")
_STATUS_LINES: dict[int, bytes] = {}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# The Date header of the current second (HTTP/1.1 servers with a clock send one).
_date: tuple[int, str] = (0, "")


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
    return line


def date_header() -> str:
    global _date
    now = int(time.time())
    if _date[0] != now:
        t = time.gmtime(now)
        text = (
            f"date: {_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT\r\n"
        )
        _date = (now, text)
    return _date[1]


def encode_head(status: int, headers: Mapping[str, str], framing: str) -> bytes:
    """Status line, the handler's headers, then the connection's ``framing`` lines (already
    CRLF-terminated), and the blank line. CR or LF in a name or value is refused (it would
    let a value add headers of its own)."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    # One CR and one LF per line, or a name or value holds one (counted in C, not per value).
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        for name, value in headers.items():
            if _BREAKS.intersection(value) or _BREAKS.intersection(name):
                raise ValueError(f"response header {name[:40]!r} holds a CR or LF")
    return status_line(status) + (date_header() + text + framing + "\r\n").encode("utf-8")


class StreamResponse:
    """An answer whose body is written piece by piece after :meth:`prepare`."""

    __slots__ = ("_conn", "_eof", "_force_close", "chunked", "head_only", "headers", "status")

    def __init__(self, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        # Names as the handler spells them (the sidecar's are lower-case); Content-Length,
        # Transfer-Encoding and Connection are the connection's to set.
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self._conn: HttpProtocol | None = None
        self._eof = False
        self._force_close = False
        self.chunked = False
        self.head_only = False

    @property
    def prepared(self) -> bool:
        return self._conn is not None

    @property
    def finished(self) -> bool:
        return self._eof

    def force_close(self) -> None:
        """Close the connection after this answer (no further request on it)."""
        self._force_close = True

    @property
    def closes(self) -> bool:
        return self._force_close

    async def prepare(self, request: Request) -> None:
        """Send the head; the body follows with :meth:`write`."""
        if self._conn is not None:
            return
        conn = request.conn
        head = conn.start_answer(self, request, None)
        self._conn = conn
        conn.write(head)

    async def write(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("write() before prepare()")
        if conn.closed:
            raise ConnectionResetError("the client closed the connection")
        if self._eof:
            raise RuntimeError("write() after write_eof()")
        if not data or self.head_only:
            return
        if self.chunked:
            conn.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            conn.write(data)
        if conn.write_paused:
            await conn.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof:
            return
        if data:
            await self.write(data)
        conn = self._conn
        if conn is None:
            raise RuntimeError("write_eof() before prepare()")
        if conn.closed:
            raise ConnectionResetError("the client closed the connection")
        self._eof = True
        if self.chunked and not self.head_only:
            conn.write(b"0\r\n\r\n")


class Response(StreamResponse):
    """A whole answer: head and body go out together in one write."""

    __slots__ = ("body",)

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(status, headers)
        if text is not None:
            body = text.encode("utf-8")
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body
        if content_type is not None:
            self.headers["content-type"] = content_type

    async def prepare(self, request: Request) -> None:
        await self.send(request)

    def send_now(self, request: Request) -> None:
        """Write head and body at once (the connection has them both in one buffer)."""
        if self._conn is not None:
            return
        conn = request.conn
        head = conn.start_answer(self, request, len(self.body))
        self._conn = conn
        conn.write(head if self.head_only or not self.body else head + self.body)
        self._eof = True

    async def send(self, request: Request) -> None:
        self.send_now(request)

    async def write(self, data: bytes) -> None:
        raise RuntimeError("a Response is sent whole: use StreamResponse to write pieces")

    async def write_eof(self, data: bytes = b"") -> None:
        if data:
            raise RuntimeError("a Response is sent whole: use StreamResponse to write pieces")
