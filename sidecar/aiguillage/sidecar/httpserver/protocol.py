"""One client connection: HTTP/1.1 parsed by ``httptools`` (llhttp), requests served in order.

What the connection guarantees, whatever the client sends:

- **framing** by llhttp in its strict mode: ``Content-Length`` and chunked bodies (trailers
  read and ignored); a request with both ``Content-Length`` and ``Transfer-Encoding``, or
  differing ``Content-Length`` values, bad chunk sizes or a malformed request line or header
  gets a 400 and the connection closed (request smuggling has no ambiguity to use). Past
  :data:`MAX_HEAD_BYTES` received without a complete head or a byte of body (a request line,
  headers, chunk framing or trailers that never end; what follows a piece of body in the
  same read is not counted, so the bound is that plus one read), a 431 (a 400 from the handler when
  it was a body's trailers), and the connection closed.
- **keep-alive** as the client asks (HTTP/1.1 by default, HTTP/1.0 with
  ``Connection: keep-alive``), unless the answer was sent before the request's body was
  received: then the connection closes once the rest has arrived (read and dropped) or
  after the server's ``linger`` seconds, so the client still gets the answer.
- **pipelining**: requests sent back to back are answered one at a time, in order; while
  :data:`MAX_PIPELINED` wait, the socket is not read.
- **timeouts**: a connection without complete request headers for ``idle_timeout`` seconds
  (idle between requests, or trickling its headers) is closed; the timer is not reset by
  partial headers.
- **cancellation**: a client that closes its connection cancels the task of the request
  being served (the handler sees ``CancelledError``).
- **backpressure**: a stream's writes wait while the transport's send buffer is above its
  high-water mark (``pause_writing``), not otherwise.
- ``Expect: 100-continue``: the ``100 Continue`` is sent when the handler reads the body.
- an exception in a handler is a 500 (or, once its answer started, the connection closed);
  an exception in this code closes the connection. Both are logged with the exception's
  type only, never the request's data.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httptools

from aiguillage.sidecar.httpserver.headers import Headers
from aiguillage.sidecar.httpserver.request import MalformedBody, Request
from aiguillage.sidecar.httpserver.response import Response, StreamResponse

if TYPE_CHECKING:
    from aiguillage.sidecar.httpserver.router import Handler
    from aiguillage.sidecar.httpserver.server import Server

log = logging.getLogger("aiguillage.sidecar.httpserver")

MAX_HEAD_BYTES = 64 * 1024
MAX_PIPELINED = 8
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpProtocol(asyncio.Protocol):
    """The server's side of one connection (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.max_body = server.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Parsing: the message whose head or body is arriving.
        self._url = b""
        self._header_items: list[tuple[str, str]] = []
        self._parsing: Request | None = None  # headers complete, body still arriving
        # Bytes received since the last complete request head or piece of body: what the
        # parser may be holding of a request line, headers or trailers.
        self._head_bytes = 0
        self._parse_stopped = False  # after an error or an upgrade: nothing more is parsed
        self._parse_error: tuple[int, str] | None = None  # answered once the queue is served
        self._read_paused = False
        # Serving: one request at a time, the others wait in order.
        self._pending: deque[Request] = deque()
        self._current: Request | None = None
        self._task: asyncio.Task[None] | None = None
        self._keep_alive = False  # of the answer being sent
        self._started = False  # the current request's answer has its head out
        self._closing = False  # the server drains: no request after the current one
        self._lingering = False  # answered; dropping the rest of the body before closing
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._start_timer(self.server.idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._parse_stopped:
            return
        self._head_bytes += len(data)  # on_headers_complete and on_body set it back to 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Another protocol follows (Upgrade, CONNECT): never spoken here. The request
            # is answered over HTTP/1.1, then the connection closes.
            self._parse_stopped = True
            if self._parsing is not None:
                self._parsing.end()
                self._parsing = None
        except httptools.HttpParserCallbackError as exc:
            # One of this module's callbacks raised: a bug here, not the client's fault.
            self._crashed(exc.__context__ or exc)
            return
        except httptools.HttpParserError as exc:
            self._bad_request(400, f"malformed HTTP request ({_reason(exc)})")
            return
        except Exception as exc:
            self._crashed(exc)
            return
        if self._head_bytes > MAX_HEAD_BYTES:
            self._bad_request(
                431,
                f"over {MAX_HEAD_BYTES} bytes of request line and headers (or chunk framing, "
                "trailers) without any body",
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.server.connections.discard(self)
        if self._parsing is not None:
            self._parsing.fail(ConnectionResetError("the client closed the connection"))
        self._pending.clear()
        task = self._task
        if task is not None and not task.done():
            task.cancel()  # the client went away: so does the work done for it
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("the client closed the connection"))
            waiter.exception()  # retrieved: nobody may be waiting any more

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._header_items = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._parsing is None:  # after the headers: a chunked body's trailers (ignored)
            self._header_items.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._head_bytes = 0
        self._cancel_timer()
        parser = self.parser
        headers = Headers(self._header_items)
        length = headers.get("content-length")
        path, query = _split_target(self._url)
        request = Request(
            self,
            parser.get_method().decode("ascii"),
            path,
            query,
            parser.get_http_version(),
            headers,
            parser.should_keep_alive(),
            int(length) if length is not None else None,  # llhttp checked it is digits
        )
        self._parsing = request
        if self._current is None and not self._lingering:
            self._serve(request)
        else:
            self._pending.append(request)

    def on_body(self, body: bytes) -> None:
        self._head_bytes = 0
        if self._parsing is not None:
            self._parsing.feed(body)

    def on_message_complete(self) -> None:
        request = self._parsing
        self._parsing = None
        if request is not None:
            request.end()
        if self._lingering:
            self.close()  # the rest of the answered request's body has been dropped
        elif len(self._pending) >= MAX_PIPELINED and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    # -- serving -------------------------------------------------------------------------------

    def _serve(self, request: Request) -> None:
        self._current = request
        self._keep_alive = self._started = False
        handler, request.match_info = self.server.router.resolve(request.method, request.path)
        self._task = self.loop.create_task(self._run(request, handler))

    async def _run(self, request: Request, handler: Handler | None) -> None:
        try:
            response: StreamResponse
            try:
                if handler is None:
                    response = self.server.error_response(404, f"unknown path {request.path}")
                else:
                    response = await handler(request)
            except asyncio.CancelledError:
                return  # the client left, or the server is closing: nobody to answer
            except Exception as exc:
                log.error(
                    "handler of %s %s failed: %s", request.method, request.path,
                    type(exc).__name__,
                )  # fmt: skip
                if self._started:
                    self.abort()  # a head is out: a clean answer is no longer possible
                    return
                response = self.server.error_response(500, "the server failed to answer")
            if self.closed:
                return
            try:
                await _send(response, request)
            except ValueError as exc:  # a header the handler gave holds a line break
                if self._started:
                    raise
                log.error("answer to %s %s refused: %s", request.method, request.path, exc)
                await _send(self.server.error_response(500, "the server failed to answer"), request)
        except ConnectionError:
            pass  # the client left while its answer was being written
        except Exception as exc:
            self._crashed(exc)
        finally:
            self._task = None
            self._current = None
            self._answered(request)

    def start_answer(self, response: StreamResponse, request: Request, length: int | None) -> bytes:
        """The head of ``response`` with the framing this connection uses for it; decides
        whether the connection serves another request after it."""
        head_only = response.head_only = request.method == "HEAD"
        keep = (
            request.keep_alive
            and not response.closes
            and not self._closing
            # Nothing more is parsed: close, unless answers to what was are still due.
            and (not self._parse_stopped or bool(self._pending) or self._parse_error is not None)
            and request.body_complete
            and (length is not None or request.version == "1.1")
        )
        self._keep_alive = keep
        if length is not None:
            framing = f"content-length: {length}\r\n"
        elif head_only or request.version != "1.1":
            framing = ""  # HTTP/1.0: the body ends with the connection
        else:
            framing = "transfer-encoding: chunked\r\n"
            response.chunked = True
        if not keep:
            framing += "connection: close\r\n"
        elif request.version != "1.1":
            framing += "connection: keep-alive\r\n"
        head = self.server.encode_head(response.status, response.headers, framing)
        self._started = True
        return head

    def _answered(self, request: Request) -> None:
        self._started = False
        if self.closed:
            return
        if not self._keep_alive:
            if self._parse_stopped:
                self._close_after_reading()
            elif request.body_complete:
                self.close()
            else:
                # Answered before its body arrived (413, 408, a refusal): read and drop the
                # rest for a while, so that the client, still sending, gets the answer.
                self._lingering = True
                self._pending.clear()
                self._start_timer(self.server.linger)
            return
        if self._pending:
            self._serve(self._pending.popleft())
            if self._read_paused and len(self._pending) < MAX_PIPELINED:
                self._read_paused = False
                assert self.transport is not None
                self.transport.resume_reading()
        elif self._parse_error is not None:
            self._write_refusal(*self._parse_error)
        else:
            self._start_timer(self.server.idle_timeout)

    def _crashed(self, exc: BaseException) -> None:
        """A bug in the serving of this connection costs this connection only."""
        log.error("HTTP connection failed: %s; closing it", type(exc).__name__)
        self.abort()

    def _bad_request(self, status: int, message: str) -> None:
        """The client sent something that is not HTTP (or too much of it): nothing more is
        read; requests already received are answered, then this, then the connection closes."""
        self._parse_stopped = True
        if self._parsing is not None:
            # In the body of a request being served: its handler learns it from read().
            self._parsing.fail(MalformedBody(message))
            self._parsing = None
            return
        if self._current is None and not self._lingering:
            self._write_refusal(status, message)
        else:
            self._parse_error = (status, message)

    def _write_refusal(self, status: int, message: str) -> None:
        response = self.server.error_response(status, message)
        body = response.body
        head = self.server.encode_head(
            status, response.headers, f"content-length: {len(body)}\r\nconnection: close\r\n"
        )
        self.write(head + body)
        self._close_after_reading()

    # -- used by requests and responses ----------------------------------------------------

    def continue_if_expected(self, request: Request) -> None:
        if (
            not request.continue_sent
            and request.version == "1.1"
            and request.headers.get("expect", "").lower() == "100-continue"
        ):
            request.continue_sent = True
            self.write(_CONTINUE)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if not self.write_paused or self.closed:
            return
        waiter = self._drain_waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None

    # -- closing ----------------------------------------------------------------------------

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task serving the current request, if any."""
        return self._task

    @property
    def idle(self) -> bool:
        return self._current is None and not self._pending

    def shutdown(self) -> None:
        """The server drains: close now if idle, after the current answer otherwise."""
        self._closing = True
        if self.idle:
            self.close()

    def close(self) -> None:
        """Close once what was written is sent."""
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _close_after_reading(self) -> None:
        """Close a connection whose client may still be sending (after a 400, 431 or an
        upgrade): our side is shut once the answer is out, what still comes is dropped until
        the client closes or for ``linger`` seconds. Closed at once, the unread bytes would
        make the system reset the connection, and the client could lose the answer."""
        self._parse_stopped = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        self._start_timer(self.server.linger)

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def _start_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self.close)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _send(response: StreamResponse, request: Request) -> None:
    if isinstance(response, Response):
        response.send_now(request)  # head and body in one write
    else:
        await response.prepare(request)
        await response.write_eof()


def _split_target(url: bytes) -> tuple[str, str]:
    """Path (percent-decoded) and query string of a request target."""
    if url[:1] != b"/":
        try:
            parsed = httptools.parse_url(url)  # absolute form: http://host/path?query
        except httptools.HttpParserInvalidURLError:
            return url.decode("latin-1"), ""
        path_b, query_b = parsed.path or b"/", parsed.query or b""
    else:
        path_b, _, query_b = url.partition(b"?")
        path_b = path_b.partition(b"#")[0]
    path = path_b.decode("latin-1")
    if "%" in path:
        path = unquote(path, encoding="utf-8", errors="replace")
    return path, query_b.decode("latin-1")


def _reason(exc: Exception) -> str:
    """What llhttp found wrong, without the bytes it was looking at."""
    text = str(exc)
    return text[:120] if text.isprintable() else type(exc).__name__
