"""A lean HTTP/1.1 client for the sidecar's requests to providers, on the loop's transports.

The sidecar sends one kind of request (a POST with its whole body at hand) and reads the
answer incrementally. aiohttp's ``ClientSession`` did that with far more machinery than it
needs (a task per request, cookie jar, tracing signals, auto-headers, URL objects): a fifth
of the sidecar's CPU time under load. This client keeps what the sidecar relies on:

- **keep-alive**: a pool of idle connections per origin (scheme, host, port), no limit on
  their number; an idle connection is closed after :data:`IDLE_SECONDS`, or as soon as the
  provider closes it. Requests are never pipelined: a connection carries one request at a
  time and goes back to the pool only once its answer was read to the end and both sides
  said keep-alive.
- **framing** by ``httptools`` (llhttp, the parser of Node.js): ``Content-Length``, chunked
  bodies (trailers ignored), bodies ending with the connection; interim ``1xx`` answers are
  skipped (a ``101`` is final: the caller refuses it). Past :data:`MAX_HEADER_BYTES`
  received without a byte of body (headers, endless interim answers, chunk extensions,
  trailers), the request fails: what the parser holds stays bounded. Bytes after the end
  of the answer (a second answer nobody asked for) are never part of it: the connection
  is closed instead of pooled.
- **decoding**: ``gzip`` and ``deflate`` bodies are inflated in steps of at most
  :data:`INFLATE_STEP` bytes as they are read, so the caller counting what it got stops a
  compression bomb after its own limit plus one step; other encodings are refused.
- **no redirects, no cookies**: a 3xx is an answer like any other (the caller refuses it);
  ``Set-Cookie`` is a header nobody reads.
- **timeouts**: connecting (``connect_timeout``), and the wait for each piece of the answer
  (``read_timeout``, reset whenever bytes arrive); an overall deadline is the caller's.
- **backpressure**: past :data:`READ_BUFFER` bytes received and not yet taken by the
  caller, the socket stops being read until they are.
- **cancellation**: a request cancelled while it waits (its client went away) closes its
  connection: the provider sees it closed, as with aiohttp.
- **TLS** through an ``ssl`` context made the first time an ``https`` origin is used (the
  ``ssl`` module is imported only then): the system's CAs, or those of ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR``; certificate and host name always verified.
- **no reuse after an error**: a connection whose answer failed in any way (framing, time,
  decoding, bytes after its end), or was not read to its end, is closed, never pooled.

Errors are :class:`ClientError` subclasses; :mod:`aiguillage.sidecar.upstream` maps them to
the sidecar's attempt errors.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httptools
import yarl

if TYPE_CHECKING:
    import ssl

MAX_HEADER_BYTES = 64 * 1024
IDLE_SECONDS = 15.0
READ_BUFFER = 256 * 1024
INFLATE_STEP = 64 * 1024
# Bodies up to this size are sent with their headers in one write.
JOIN_BODY_BELOW = 256 * 1024
DEFAULT_HEADERS = (("accept", "*/*"), ("accept-encoding", "gzip, deflate"))
# Set by the client, never taken from the caller (they decide how the body is framed).
OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_BREAKS = frozenset("\r\n\x00")


class ClientError(Exception):
    """A request to a provider failed below HTTP's meaning (connection, framing, time)."""


class ConnectError(ClientError):
    """No connection could be made (refused, unresolvable, TLS handshake failed)."""


class ConnectTimeout(ClientError):
    """Connecting took longer than the connect timeout."""


class ReadTimeout(ClientError):
    """No byte of the answer arrived for the read timeout."""


class ProtocolError(ClientError):
    """What the provider sent is not HTTP/1.1 (a bad status line or chunk, huge headers)."""


class ConnectionCut(ClientError):
    """The connection closed (or was reset) before the answer ended."""


class ContentEncodingError(ClientError):
    """The body's Content-Encoding is not gzip or deflate, or does not inflate."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@functools.lru_cache(maxsize=1024)
def split_url(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an absolute http(s) URL; ValueError for anything else.

    The URL is normalised by ``yarl`` as aiohttp did: characters a path or query may not hold
    (spaces, CR, LF...) are percent-encoded or dropped, never sent raw; a host is IDNA-encoded.
    """
    parts = yarl.URL(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.raw_host or parts.port is None:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return Origin(scheme, parts.raw_host, parts.port), parts.raw_path_qs or "/"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    import ssl  # only once a provider is reached over https

    return ssl.create_default_context()


def request_head(origin: Origin, target: str, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers of a POST (CR and LF refused in any name or value)."""
    lines = [f"POST {target} HTTP/1.1", f"content-length: {length}"]
    given = set()
    for name, value in headers.items():
        low = name.lower()
        if low in OWN_HEADERS:
            continue
        if _BREAKS.intersection(name) or _BREAKS.intersection(value):
            raise ValueError(f"request header {name[:40]!r} holds a CR or LF")
        given.add(low)
        lines.append(f"{name}: {value}")
    if "host" not in given:
        lines.insert(1, f"host: {origin.host_header}")
    for name, value in DEFAULT_HEADERS:
        if name not in given:
            lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Response:
    """A provider's answer: status and headers once received, the body read on demand.

    ``headers`` has lower-case names; a header sent more than once keeps its first value.
    The body is read with :meth:`chunks` (decoded). Call :meth:`release` (the connection
    goes back to the pool if the body was read to its end) or :meth:`close` when done.
    """

    __slots__ = (
        "_buffered",
        "_complete",
        "_conn",
        "_error",
        "_pieces",
        "_waiter",
        "headers",
        "headers_done",
        "status",
        "url",
    )

    def __init__(self, conn: _Connection, url: str) -> None:
        self._conn = conn
        self.url = url
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: ClientError | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def complete(self) -> bool:
        """The whole body has been received (not necessarily read)."""
        return self._complete

    async def _wait(self) -> None:
        conn = self._conn
        waiter = self._waiter = conn.loop.create_future()
        timer = conn.loop.call_later(conn.read_timeout, conn.read_timed_out)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_some(self) -> bytes:
        """The body bytes received since the last call (as sent: not decoded), waiting for
        some if there are none; ``b""`` once the body has ended."""
        while True:
            pieces = self._pieces
            if pieces:
                data = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                if self._buffered > READ_BUFFER:
                    self._conn.resume()
                self._buffered = 0
                return data
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            await self._wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded, in pieces as they arrive (inflated ones in bounded steps)."""
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            while data := await self.read_some():
                yield data
            return
        if encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            inflater = _DeflateEither()  # type: ignore[assignment]
        else:
            self._conn.abort()
            raise ContentEncodingError(f"unsupported content-encoding {encoding[:40]!r}")
        try:
            while data := await self.read_some():
                while data:
                    out = inflater.decompress(data, INFLATE_STEP)
                    data = inflater.unconsumed_tail
                    if out:
                        yield out
            rest = inflater.flush()
        except zlib.error as exc:
            self._conn.abort()  # a provider whose body does not decode gets no other request
            raise ContentEncodingError(f"{encoding} body does not inflate") from exc
        if rest:
            yield rest

    def release(self) -> None:
        """Done with this answer: its connection is pooled if it can be, else closed."""
        self._conn.done(self)

    def close(self) -> None:
        """Done with this answer: its connection is closed."""
        self._conn.abort()


class _DeflateEither:
    """``deflate`` as servers send it: zlib-wrapped (as RFC 9110 says) or raw."""

    def __init__(self) -> None:
        self._inner: Any = None
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            raw = (data[0] & 0x0F) != 8  # a zlib header starts with method 8 (deflate)
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out: bytes = self._inner.decompress(data, max_length)
        self.unconsumed_tail = self._inner.unconsumed_tail
        return out

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


class _Connection(asyncio.Protocol):
    """One connection to an origin, carrying one request at a time."""

    def __init__(self, client: Client, origin: Origin) -> None:
        self.client = client
        self.origin = origin
        self.loop = client.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.read_timeout = 0.0
        self.closed = False
        self.keep_alive = False
        self._paused = False
        self._interim = False
        self._until_close = False
        self._ended = False  # the answer to the request in flight has ended
        self._excess_seen = False  # and more came after it
        self._quiet = 0  # bytes received since the last byte of body
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is None or self._ended:
            # Bytes nobody asked for (on an idle connection, or after the answer's end):
            # this connection cannot be trusted with another request.
            self.abort()
            return
        self._quiet += len(data)  # on_body sets it back to 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.keep_alive = False  # a 101: the caller refuses it, the connection ends
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"provider sent invalid HTTP ({type(exc).__name__})"))
            return
        if self._excess_seen:
            self.abort()
        elif not self._ended and self._quiet > MAX_HEADER_BYTES:
            self._fail(
                ProtocolError(
                    f"provider sent over {MAX_HEADER_BYTES} bytes of headers (or chunk "
                    "framing, trailers) without any body"
                )
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        self.client.forget(self)
        response = self.response
        if response is None or response._complete or response._error is not None:
            return
        if response.headers_done and self._until_close and exc is None:
            response._complete = True  # a body without length ends with its connection
        else:
            response._error = ConnectionCut(
                "provider closed the connection before its answer ended"
                if exc is None
                else f"connection lost ({type(exc).__name__})"
            )
        response._wake()

    def pause_writing(self) -> None:
        pass  # requests are written whole; nothing waits to write more

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ---------------------------------------------------------------

    # After the answer ended, the parser reads what follows as the next answer: each
    # callback first makes sure none of it reaches the one in flight.

    def _excess(self) -> None:
        self._excess_seen = True  # data_received closes the connection

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is None or response.headers_done:
            return  # trailers of a chunked body (or headers after the end): ignored
        key = name.decode("latin-1").lower()
        if key not in response.headers:
            response.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        if self._ended:
            self._excess()
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: the answer follows
            response.headers = {}
            return
        response.status = status
        response.headers_done = True
        headers = response.headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (101, 204, 304)
        )
        response._wake()

    def on_body(self, body: bytes) -> None:
        if self._ended:
            self._excess()
            return
        self._quiet = 0
        response = self.response
        assert response is not None
        response._pieces.append(body)
        response._buffered += len(body)
        if response._buffered > READ_BUFFER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        if response._waiter is not None:
            response._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._ended:
            self._excess()
            return
        self._ended = True
        response = self.response
        assert response is not None
        response._complete = True
        self.keep_alive = self.parser.should_keep_alive() and not self._until_close
        response._wake()

    # -- used by the client and the response ----------------------------------------------------

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def read_timed_out(self) -> None:
        self._fail(ReadTimeout(f"no data from the provider for {self.read_timeout:g}s"))

    def _fail(self, error: ClientError) -> None:
        response = self.response
        if response is not None and response._error is None and not response._complete:
            response._error = error
            response._wake()
        self.abort()

    def send(self, head: bytes, body: bytes, read_timeout: float, url: str) -> Response:
        assert self.transport is not None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.read_timeout = read_timeout
        self.response = response = Response(self, url)
        self._quiet = 0
        self._ended = False
        self._excess_seen = False
        self._until_close = False
        if len(body) < JOIN_BODY_BELOW:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return response

    def done(self, response: Response) -> None:
        if self.response is not response:
            return
        if not (response._complete and self.keep_alive and not response._pieces) or self.closed:
            self.abort()
            return
        self.response = None
        self.parser = httptools.HttpResponseParser(self)
        self.resume()
        self._idle_timer = self.loop.call_later(self.client.idle_seconds, self.abort)
        self.client.pool(self)

    def abort(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.keep_alive = False
        if not self.closed:
            self.closed = True
            self.client.forget(self)
            if self.transport is not None:
                self.transport.abort()  # at once, unsent bytes dropped: the request is over
        response = self.response
        if response is not None and response._error is None and not response._complete:
            response._error = ConnectionCut("the connection was closed")
            response._wake()


class Client:
    """Connections to providers, pooled per origin. Make it on the loop that uses it."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.loop = asyncio.get_running_loop()
        self.idle_seconds = idle_seconds
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> Response:
        """Send a POST; return the answer once its (final) status and headers arrived.

        The caller owns the answer and must release or close it. Cancelled while waiting,
        the connection is closed.
        """
        origin, target = split_url(url)
        head = request_head(origin, target, headers, len(body))
        conn = self._take(origin) or await self._connect(origin, connect_timeout)
        response = conn.send(head, body, read_timeout, url)
        try:
            while not response.headers_done:
                if response._error is not None:
                    raise response._error
                await response._wait()
        except BaseException:
            conn.abort()
            raise
        return response

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self, origin: Origin, within: float) -> _Connection:
        tls = _tls_context() if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(within):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"connecting took over {within:g}s") from None
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), TLS (SSLError)
            raise ConnectError(type(exc).__name__) from exc
        self._open.add(conn)
        return conn

    def pool(self, conn: _Connection) -> None:
        self._idle.setdefault(conn.origin, []).append(conn)

    def forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        """Close every connection (answers still being read fail with ConnectionCut)."""
        for conn in list(self._open):
            conn.abort()
        self._idle.clear()
