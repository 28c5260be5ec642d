"""The sidecar's own HTTP/1.1 client (``httpclient.py``), against scripted raw TCP servers:
framing, keep-alive, decoding limits, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aiguillage.devtools import pki
from aiguillage.sidecar import httpclient
from aiguillage.sidecar.httpclient import Client, Response

Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One connection accepted by the scripted server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> tuple[bytes, bytes]:
        """The next request's head and body (by its Content-Length)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head, await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@dataclass
class Server:
    handler: Handler
    url: str = ""
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a connection saw EOF
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1/x"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = Conn(reader, writer)
        try:
            await self.handler(conn)
            await reader.read()  # until the client closes
            self.closed.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed.set()
        except asyncio.CancelledError:
            pass  # the test is over: its loop ends the connections still open
        finally:
            writer.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    yield c
    await c.close()


async def serve(handler: Handler) -> Server:
    server = Server(handler)
    await server.start()
    return server


async def post(client: Client, server: Server, **kw: float) -> Response:
    return await client.post(
        server.url,
        {"content-type": "application/json"},
        b"{}",
        connect_timeout=kw.get("connect", 2.0),
        read_timeout=kw.get("read", 5.0),
    )


async def body(response: Response) -> bytes:
    return b"".join([piece async for piece in response.chunks()])


def ok(data: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(data)}\r\n{extra}\r\n".encode() + data


def answering(*answers: bytes) -> Handler:
    """Answers each request on a connection with the next of ``answers``."""

    async def handler(conn: Conn) -> None:
        for answer in answers:
            await conn.request()
            await conn.send(answer)

    return handler


# -- framing -------------------------------------------------------------------------------------


async def test_a_chunked_body_split_anywhere_with_trailers(client: Client) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: ignored\r\n\r\n"
    )

    async def byte_by_byte(conn: Conn) -> None:
        await conn.request()
        for i in range(len(raw)):
            await conn.send(raw[i : i + 1])

    server = await serve(byte_by_byte)
    response = await post(client, server)
    assert response.status == 200
    assert await body(response) == b"hello, world"
    assert "x-trailer" not in response.headers
    assert response.complete


def then_close(raw: bytes) -> Handler:
    """Answers the first request with ``raw`` (maybe nothing), then closes the connection."""

    async def handler(conn: Conn) -> None:
        await conn.request()
        if raw:
            await conn.send(raw)
        conn.writer.close()

    return handler


async def test_a_body_ended_by_the_connection_is_whole(client: Client) -> None:
    server = await serve(then_close(b"HTTP/1.1 200 OK\r\n\r\nall of it"))
    assert await body(await post(client, server)) == b"all of it"


async def test_a_connection_closed_mid_body_is_cut(client: Client) -> None:
    server = await serve(then_close(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"))
    response = await post(client, server)
    with pytest.raises(httpclient.ConnectionCut):
        await body(response)


async def test_a_connection_closed_before_any_answer_is_cut(client: Client) -> None:
    server = await serve(then_close(b""))
    with pytest.raises(httpclient.ConnectionCut):
        await post(client, server)


async def test_headers_past_the_limit_are_refused(client: Client) -> None:
    big = "x-big: " + "a" * (httpclient.MAX_HEADER_BYTES + 10)

    async def huge(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\n" + big.encode()[:70000])  # never ends

    server = await serve(huge)
    with pytest.raises(httpclient.ProtocolError, match="bytes of headers"):
        await post(client, server)


async def test_interim_answers_are_skipped_and_101_is_final(client: Client) -> None:
    server = await serve(
        answering(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nlink: x\r\n\r\n" + ok(b"{}"))
    )
    response = await post(client, server)
    assert (response.status, "link" in response.headers) == (200, False)
    assert await body(response) == b"{}"

    switching = await serve(answering(b"HTTP/1.1 101 Switching\r\nupgrade: x\r\n\r\n"))
    response = await post(client, switching)
    assert response.status == 101
    response.close()


async def test_a_redirect_is_an_answer_not_followed(client: Client) -> None:
    server = await serve(
        answering(b"HTTP/1.1 307 Moved\r\nlocation: http://elsewhere.example/\r\n\r\n")
    )
    response = await post(client, server)
    assert (response.status, response.headers["location"]) == (307, "http://elsewhere.example/")
    response.close()
    assert server.connections == 1


async def test_a_header_value_with_a_line_break_is_refused(client: Client) -> None:
    server = await serve(answering(ok(b"{}")))
    with pytest.raises(ValueError, match="CR or LF"):
        await client.post(
            server.url, {"x-a": "1\r\nx-injected: 2"}, b"", connect_timeout=2, read_timeout=2
        )
    assert server.connections == 0


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://127.0.0.1:8080/v1/chat", ("http", "127.0.0.1", 8080), "/v1/chat"),
        ("HTTPS://[::1]/a b?x=1", ("https", "::1", 443), "/a%20b?x=1"),
        ("https://h.example/m\r\nx-injected: 1", ("https", "h.example", 443), "/mx-injected:%201"),
        ("http://h.example", ("http", "h.example", 80), "/"),
    ],
)
def test_urls_are_normalised_never_sent_raw(
    url: str, origin: tuple[str, str, int], target: str
) -> None:
    parsed, path = httpclient.split_url(url)
    assert ((parsed.scheme, parsed.host, parsed.port), path) == (origin, target)


@pytest.mark.parametrize("url", ["ftp://h.example/", "/v1/chat", "http:///nohost"])
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="not an absolute"):
        httpclient.split_url(url)


# -- keep-alive ----------------------------------------------------------------------------------


async def test_a_connection_is_reused_once_its_answer_was_read(client: Client) -> None:
    cookie = "set-cookie: session=for-someone; Path=/"
    server = await serve(answering(ok(b"one", cookie), ok(b"two")))
    first = await post(client, server)
    assert await body(first) == b"one"
    first.release()
    second = await post(client, server)
    assert await body(second) == b"two"
    second.release()

    assert server.connections == 1
    assert client.open_connections == 1


async def test_set_cookie_is_never_sent_back(client: Client) -> None:
    heads: list[bytes] = []

    async def record(conn: Conn) -> None:
        for answer in (ok(b"{}", "set-cookie: a=b; Path=/"), ok(b"{}")):
            head, _ = await conn.request()
            heads.append(head.lower())
            await conn.send(answer)

    server = await serve(record)
    for _ in range(2):
        response = await post(client, server)
        await body(response)
        response.release()
    assert b"cookie" not in heads[1]


async def test_a_half_read_answer_closes_its_connection(client: Client) -> None:
    async def half_then_wait(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf.")
        await conn.reader.read()  # the rest never comes: the client must not reuse this
        await conn.send(ok(b"wrong"))

    server = await serve(half_then_wait)
    first = await post(client, server)
    async for _ in first.chunks():
        break  # the caller stops reading
    first.release()
    await asyncio.wait_for(server.closed.wait(), 5)
    other = await serve(answering(ok(b"two")))
    second = await post(client, other)
    assert await body(second) == b"two"
    assert client.open_connections == 1


async def test_connection_close_is_not_reused(client: Client) -> None:
    server = await serve(answering(ok(b"one", "connection: close")))
    server2_answers = await serve(answering(ok(b"two")))
    first = await post(client, server)
    await body(first)
    first.release()
    assert client.open_connections == 0
    second = await post(client, server2_answers)
    assert await body(second) == b"two"


async def test_requests_are_never_pipelined(client: Client) -> None:
    gate = asyncio.Event()

    async def slow_first(conn: Conn) -> None:
        await conn.request()
        await gate.wait()
        await conn.send(ok(b"late"))

    server = await serve(slow_first)
    first = asyncio.create_task(post(client, server))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(post(client, server))
    await asyncio.sleep(0.05)
    assert server.connections == 2  # the second request did not queue behind the first
    gate.set()
    for task in (first, second):
        response = await task
        assert await body(response) == b"late"
        response.release()


async def test_an_idle_connection_the_provider_closed_is_not_reused(client: Client) -> None:
    server = await serve(then_close(ok(b"{}")))
    first = await post(client, server)
    await body(first)
    first.release()
    await asyncio.wait_for(server.closed.wait(), 5)
    for _ in range(100):  # the client notices the close on its next loop turns
        if client.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert client.open_connections == 0


async def test_an_idle_pooled_connection_is_closed_after_a_while() -> None:
    client = Client(idle_seconds=0.05)
    try:
        server = await serve(answering(ok(b"{}")))
        response = await post(client, server)
        await body(response)
        response.release()
        await asyncio.wait_for(server.closed.wait(), 5)
        assert client.open_connections == 0
    finally:
        await client.close()


# -- decoding ------------------------------------------------------------------------------------


async def test_gzip_and_both_deflates_are_inflated(client: Client) -> None:
    text = b'{"a": "' + b"z" * 10_000 + b'"}'
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    answers = (
        ok(gzip.compress(text), "content-encoding: gzip"),
        ok(zlib.compress(text), "content-encoding: deflate"),
        ok(raw_deflate.compress(text) + raw_deflate.flush(), "content-encoding: deflate"),
    )
    server = await serve(answering(*answers))
    for _ in answers:
        response = await post(client, server)
        assert await body(response) == text
        response.release()


async def test_a_gzip_bomb_inflates_in_bounded_steps(client: Client) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB in ~64 KiB
    server = await serve(answering(ok(bomb, "content-encoding: gzip")))
    response = await post(client, server)
    inflated = 0
    async for piece in response.chunks():
        assert len(piece) <= httpclient.INFLATE_STEP
        inflated += len(piece)
        if inflated > 1024 * 1024:
            break  # a reader with a 1 MiB limit stops here: nothing more was inflated
    response.close()
    assert inflated <= 1024 * 1024 + httpclient.INFLATE_STEP


@pytest.mark.parametrize(("encoding", "data"), [("br", b"\x0b\x00"), ("gzip", b"not gzip at all")])
async def test_unknown_or_corrupt_encodings_are_refused(
    client: Client, encoding: str, data: bytes
) -> None:
    server = await serve(answering(ok(data, f"content-encoding: {encoding}")))
    response = await post(client, server)
    with pytest.raises(httpclient.ContentEncodingError):
        await body(response)


# -- time, backpressure, cancellation -------------------------------------------------------------


async def test_no_answer_within_the_read_timeout(client: Client) -> None:
    async def silent(conn: Conn) -> None:
        await conn.request()

    server = await serve(silent)
    with pytest.raises(httpclient.ReadTimeout):
        await post(client, server, read=0.2)


async def test_a_body_stalled_past_the_read_timeout(client: Client) -> None:
    async def stall(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")

    server = await serve(stall)
    response = await post(client, server, read=0.2)
    with pytest.raises(httpclient.ReadTimeout):
        await body(response)


async def test_nothing_listening_is_a_connect_error(client: Client) -> None:
    server = await serve(answering())
    assert server._server is not None
    server._server.close()
    await server._server.wait_closed()
    with pytest.raises(httpclient.ConnectError):
        await post(client, server)


async def test_a_slow_reader_stops_the_socket_being_read(client: Client) -> None:
    size = 8 * 1024 * 1024
    sent = asyncio.Event()

    async def flood(conn: Conn) -> None:
        await conn.request()
        conn.writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        conn.writer.write(b"x" * size)
        await conn.writer.drain()  # returns once the client reads it all
        sent.set()

    server = await serve(flood)
    response = await post(client, server)
    await asyncio.sleep(0.3)  # the provider keeps sending; the client does not read
    assert not sent.is_set()
    held = len(await response.read_some())
    assert held < size // 2  # what was held is bounded, far below what was sent
    assert len(await body(response)) == size - held
    await asyncio.wait_for(sent.wait(), 5)


async def test_cancelling_a_request_closes_its_connection(client: Client) -> None:
    async def never(conn: Conn) -> None:
        await conn.request()

    server = await serve(never)
    task = asyncio.create_task(post(client, server))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.closed.wait(), 5)  # the provider sees it closed
    assert client.open_connections == 0


# -- hostile framing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [
        b"5\r\nhello\r\nZZ\r\n",  # not hexadecimal
        b"-1\r\nx\r\n0\r\n\r\n",  # negative size
        b"1" + b"0" * 20 + b"\r\nx",  # a size past 64 bits
        b"5\r\nhelloXX0\r\n\r\n",  # data longer than its size
        b"5 5\r\nhello\r\n0\r\n\r\n",  # two sizes
    ],
)
async def test_bad_chunk_framing_is_a_protocol_error(client: Client, chunks: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    server = await serve(answering(head + chunks))
    response = await post(client, server)
    with pytest.raises(httpclient.ProtocolError):
        await body(response)
    assert client.open_connections == 0


async def test_endless_trailers_are_refused(client: Client) -> None:
    async def endless(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
        await conn.send(b"x-trailer: ")
        while True:  # until the client hangs up
            await conn.send(b"t" * 16384)

    server = await serve(endless)
    response = await post(client, server)
    with pytest.raises(httpclient.ProtocolError, match="bytes of headers"):
        await body(response)


async def test_endless_interim_answers_are_refused(client: Client) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    many = interim * (httpclient.MAX_HEADER_BYTES // len(interim) + 10)
    server = await serve(answering(many))
    with pytest.raises(httpclient.ProtocolError, match="bytes of headers"):
        await post(client, server)


async def test_a_second_answer_in_the_same_packet_is_not_part_of_the_first(
    client: Client,
) -> None:
    server = await serve(answering(ok(b"one") + ok(b"smuggled"), ok(b"stale")))
    first = await post(client, server)
    assert await body(first) == b"one"
    first.release()
    assert client.open_connections == 0  # closed, not pooled
    second = await post(client, server)
    assert await body(second) == b"one"  # a new connection's first answer, not "stale"
    second.release()
    assert server.connections == 2


async def test_bytes_sent_to_an_idle_connection_close_it(client: Client) -> None:
    released = asyncio.Event()

    async def unsolicited(conn: Conn) -> None:
        await conn.request()
        await conn.send(ok(b"one"))
        await released.wait()
        await conn.send(ok(b"nobody asked"))

    server = await serve(unsolicited)
    first = await post(client, server)
    assert await body(first) == b"one"
    first.release()
    assert client.open_connections == 1
    released.set()
    await asyncio.wait_for(server.closed.wait(), 5)  # the client hung up on it
    assert client.open_connections == 0


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", httpclient.ReadTimeout),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n",
            httpclient.ProtocolError,
        ),
        (ok(b"not gzip", "content-encoding: gzip"), httpclient.ContentEncodingError),
        (ok(b"{}", "content-encoding: br"), httpclient.ContentEncodingError),
    ],
)
async def test_a_connection_is_never_reused_after_an_error(
    client: Client, broken: bytes, error: type[Exception]
) -> None:
    async def first_connection_broken(conn: Conn) -> None:
        first = server.connections == 1
        if first:
            await conn.request()
            await conn.send(broken)
        while True:  # what a stale connection would answer next
            await conn.request()
            await conn.send(ok(b"stale" if first else b"fresh"))

    server = await serve(first_connection_broken)
    first = await post(client, server, read=0.3)
    with pytest.raises(error):
        await body(first)
    first.release()
    assert client.open_connections == 0
    second = await post(client, server)
    assert await body(second) == b"fresh"
    second.release()
    assert server.connections == 2


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA and a serving certificate for localhost (not for 127.0.0.1)."""
    workdir = tmp_path_factory.mktemp("tls")
    pki.write_credentials(workdir, admin_user="unused", admin_group="unused", serving_ips=[])
    return workdir


@pytest.fixture
def fresh_tls_context() -> Iterator[None]:
    httpclient._tls_context.cache_clear()  # read SSL_CERT_FILE as this test set it
    yield
    httpclient._tls_context.cache_clear()


async def serve_tls(handler: Handler, files: Path) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files / pki.SERVING_CERT, files / pki.SERVING_KEY)
    server = Server(handler)
    server._server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=context)
    port = server._server.sockets[0].getsockname()[1]
    server.url = f"https://localhost:{port}/v1/x"
    return server


@pytest.mark.usefixtures("fresh_tls_context")
async def test_https_to_a_provider_whose_ca_is_trusted(
    client: Client, tls_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / pki.CA_CERT))
    server = await serve_tls(answering(ok(b"one"), ok(b"two")), tls_files)
    for expected in (b"one", b"two"):
        response = await post(client, server)
        assert await body(response) == expected
        response.release()
    assert server.connections == 1  # kept alive over TLS too


@pytest.mark.usefixtures("fresh_tls_context")
@pytest.mark.parametrize("trusted", [False, True])
async def test_https_refuses_a_certificate_it_cannot_verify(
    client: Client, tls_files: Path, monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    requests: list[bytes] = []

    async def record(conn: Conn) -> None:
        head, _ = await conn.request()
        requests.append(head)
        await conn.send(ok(b"{}"))

    if trusted:  # a trusted CA, but the certificate does not name 127.0.0.1
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / pki.CA_CERT))
    else:  # nobody trusts this CA
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = await serve_tls(record, tls_files)
    url = server.url.replace("localhost", "127.0.0.1") if trusted else server.url
    with pytest.raises(httpclient.ConnectError, match=r"^SSLCertVerificationError$"):
        await client.post(
            url, {"authorization": "Bearer secret"}, b"{}", connect_timeout=5, read_timeout=5
        )
    assert requests == []  # the credentials never left
    assert client.open_connections == 0


async def test_cancelling_a_read_mid_body_closes_its_connection(client: Client) -> None:
    async def half(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome of it")

    server = await serve(half)
    started = asyncio.Event()

    async def reader() -> None:  # as the sidecar reads an answer: released whatever happens
        response = await post(client, server)
        try:
            async for _ in response.chunks():
                started.set()
        finally:
            response.release()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()  # the client of the sidecar went away
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.closed.wait(), 5)  # the provider sees it closed
    assert client.open_connections == 0
