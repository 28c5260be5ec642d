"""One connection of the sidecar's HTTP server (``httpserver/protocol.py``): framing, keep-alive,
pipelining, timeouts, cancellation, backpressure and hostile requests, over raw sockets.

The tests that split a request at every byte boundary feed the connection directly (a socket
does not promise to deliver a write as one read); everything else goes through a real socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from aiguillage.sidecar.httpserver import Request, Response, Router, Server, StreamResponse
from aiguillage.sidecar.httpserver.protocol import MAX_HEAD_BYTES, MAX_PIPELINED, HttpProtocol
from tests.sidecar.conftest import async_wait_for
from tests.sidecar.httpserver._raw import WITHIN, Answer, closed_by_server, get, post, read_answer
from tests.sidecar.httpserver.conftest import Running, Start, echo

# -- every byte boundary (fed to the connection directly) ----------------------------------


class Captured(asyncio.Transport):
    """A transport that keeps what the server writes."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def fed_in_pieces(pieces: list[bytes], answers: int = 1) -> list[Answer]:
    router = Router()
    router.add("POST", "/echo", echo)
    server = Server(router)
    server.loop = asyncio.get_running_loop()
    conn = HttpProtocol(server)
    transport = Captured()
    conn.connection_made(transport)
    for piece in pieces:
        conn.data_received(piece)
        await asyncio.sleep(0)  # the handler may run between two reads
    reader = asyncio.StreamReader()
    got: list[Answer] = []
    for _ in range(answers):
        await async_wait_for(lambda: conn.idle, WITHIN, "the answers")
        reader.feed_data(bytes(transport.sent))
        transport.sent.clear()
        got.append(await read_answer(reader))
    conn.connection_lost(None)
    return got


async def test_a_body_split_at_every_byte_boundary_is_read_whole() -> None:
    raw = post(
        "/echo", b'{"model": "chat", "x": "\xc3\xa9t\xc3\xa9"}', "Content-Type: application/json"
    )
    for cut in range(1, len(raw)):
        (answer,) = await fed_in_pieces([raw[:cut], raw[cut:]])
        assert (answer.status, answer.body) == (200, raw[raw.index(b"\r\n\r\n") + 4 :]), cut


async def test_a_chunked_body_split_anywhere_with_trailers_is_read_whole() -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    for cut in range(1, len(raw)):
        (answer,) = await fed_in_pieces([raw[:cut], raw[cut:]])
        assert (answer.status, answer.body) == (200, b"hello, world"), cut


async def test_a_request_sent_byte_by_byte_is_served() -> None:
    raw = post("/echo", b"abc") + post("/echo", b"defg")
    first, second = await fed_in_pieces([bytes([b]) for b in raw], answers=2)
    assert (first.body, second.body) == (b"abc", b"defg")


CHUNKED_HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


# -- framing and hostile requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"-5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["not-hex", "negative"],
)
async def test_a_bad_chunk_size_is_a_400_and_the_connection_closes(
    start: Start, raw: bytes
) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(raw)
    answer = await read_answer(reader)
    assert answer.status == 400
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.parametrize(
    "raw",
    [
        # Both framings: a proxy in front might pick the other one (request smuggling).
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /echo SMTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
    ],
    ids=["content-length-and-chunked", "two-lengths", "space-in-name", "not-http", "tls"],
)
async def test_ambiguous_or_malformed_requests_are_a_400_and_never_served(
    start: Start, raw: bytes
) -> None:
    served: list[str] = []

    async def record(request: Request) -> StreamResponse:
        served.append(request.path)
        return await echo(request)

    running = await start({"/echo": record})
    reader, writer = await running.connect()
    writer.write(raw)
    answer = await read_answer(reader)
    assert answer.status == 400
    assert answer.headers["connection"] == "close"
    assert await closed_by_server(reader)
    assert served == []
    writer.close()


async def test_oversized_headers_are_a_431_and_the_connection_closes(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    for _ in range(MAX_HEAD_BYTES // 1000 + 2):
        writer.write(b"X-Filler: " + b"a" * 990 + b"\r\n")
    answer = await read_answer(reader)
    assert answer.status == 431
    assert await closed_by_server(reader)
    writer.close()


async def test_endless_trailers_are_cut_off(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Trailer: ")
    # What follows a piece of body in the same read is not counted: past the limit by more
    # than one read (the loops read up to 256 KiB at a time).
    for _ in range(MAX_HEAD_BYTES // 1000 + 300):
        writer.write(b"t" * 1000)
    answer = await read_answer(reader)
    assert (answer.status, answer.body) == (400, b"malformed body")
    assert await closed_by_server(reader)
    writer.close()


async def test_a_big_body_in_one_read_is_not_mistaken_for_big_headers(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    body = b"b" * (MAX_HEAD_BYTES * 3)
    writer.write(post("/echo", body) + post("/echo", b"next"))
    assert (await read_answer(reader)).body == body
    assert (await read_answer(reader)).body == b"next"
    writer.close()


async def test_a_body_over_the_limit_is_refused_without_being_kept(start: Start) -> None:
    running = await start(max_body=1000)
    reader, writer = await running.connect()
    writer.write(post("/echo", b"x" * 1001))
    assert (await read_answer(reader)).status == 413
    # A chunked body has no length up front: refused once the bytes received pass the limit.
    reader, writer = await running.connect()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        writer.write(b"190\r\n" + b"y" * 400 + b"\r\n")
    assert (await read_answer(reader)).status == 413
    writer.close()
    # At the limit, it is served.
    reader, writer = await running.connect()
    writer.write(post("/echo", b"z" * 1000))
    assert (await read_answer(reader)).body == b"z" * 1000
    writer.close()


async def test_an_answer_given_before_the_body_arrived_reaches_a_client_still_sending(
    start: Start,
) -> None:
    async def refuse(request: Request) -> StreamResponse:
        return Response(415, text="no")  # does not read the body

    running = await start({"/refuse": refuse}, linger=5.0)
    reader, writer = await running.connect()
    writer.write(post("/refuse", b"a" * 10)[:-5])  # the body is not all there yet
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (415, "close")
    writer.write(b"aaaaa")  # the rest is read and dropped, then the connection closes
    assert await closed_by_server(reader)
    writer.close()


async def test_expect_100_continue_is_answered_when_the_body_is_read(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(
        post("/echo", b"", "Expect: 100-continue")[: -0 or None].replace(
            b"Content-Length: 0", b"Content-Length: 4"
        )
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"body")
    answer = await read_answer(reader)
    assert (answer.status, answer.body) == (200, b"body")
    writer.close()


async def test_head_has_the_length_but_no_body(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(get("/echo", method="HEAD") + get("/echo?x=1"))
    head = await read_answer(reader, head_request=True)
    assert (head.status, head.headers["content-length"]) == (200, "0")
    after = await read_answer(reader)  # the next answer starts right after the head
    assert (after.status, after.headers["x-query"]) == (200, "x=1")
    writer.close()


async def test_request_line_and_headers_as_the_handler_sees_them(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(
        b"POST /echo?a=b%20c HTTP/1.1\r\nHOST: x\r\ncontent-TYPE: Application/JSON; charset=utf-8"
        b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    answer = await read_answer(reader)
    assert answer.headers["x-path"] == "/echo"
    assert answer.headers["x-query"] == "a=b%20c"
    assert answer.headers["x-content-type"] == "application/json"
    assert answer.headers["date"].endswith(" GMT")
    writer.close()


# -- keep-alive, HTTP/1.0, pipelining ------------------------------------------------------------


async def test_keep_alive_serves_requests_one_after_the_other_on_one_connection(
    start: Start,
) -> None:
    running = await start()
    reader, writer = await running.connect()
    seen = []
    for n in range(3):
        writer.write(post("/echo", b"%d" % n))
        answer = await read_answer(reader)
        assert answer.body == b"%d" % n
        assert "connection" not in answer.headers
        seen.append(answer.headers["x-connection"])
    assert len(set(seen)) == 1
    assert len(running.server.connections) == 1
    writer.close()


async def test_connection_close_is_answered_then_the_connection_closes(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(post("/echo", b"bye", "Connection: close"))
    answer = await read_answer(reader)
    assert (answer.body, answer.headers["connection"]) == (b"bye", "close")
    assert await closed_by_server(reader)
    writer.close()


async def test_http_1_0_closes_unless_asked_to_keep_alive(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(post("/echo", b"one", version="1.0"))
    assert (await read_answer(reader)).headers["connection"] == "close"
    assert await closed_by_server(reader)
    writer.close()

    reader, writer = await running.connect()
    writer.write(post("/echo", b"two", "Connection: keep-alive", version="1.0"))
    answer = await read_answer(reader)
    assert (answer.body, answer.headers["connection"]) == (b"two", "keep-alive")
    writer.write(post("/echo", b"three", "Connection: keep-alive", version="1.0"))
    assert (await read_answer(reader)).body == b"three"
    writer.close()


async def test_a_stream_to_an_http_1_0_client_ends_with_the_connection(start: Start) -> None:
    async def stream(request: Request) -> StreamResponse:
        response = StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for n in range(3):
            await response.write(b"data: %d\n\n" % n)
        await response.write_eof()
        return response

    running = await start({"/stream": stream})
    reader, writer = await running.connect()
    writer.write(get("/stream", "Connection: keep-alive", version="1.0"))
    answer = await read_answer(reader)  # no length, not chunked: up to the close
    assert "transfer-encoding" not in answer.headers
    assert answer.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    writer.close()


async def test_pipelined_requests_are_answered_in_order(start: Start) -> None:
    async def slow(request: Request) -> StreamResponse:
        body = await request.read()
        await asyncio.sleep(0.2 / int(body))  # the first is the slowest
        return Response(200, body)

    running = await start({"/slow": slow})
    reader, writer = await running.connect()
    writer.write(b"".join(post("/slow", b"%d" % n) for n in range(1, 5)))
    bodies = [(await read_answer(reader)).body for _ in range(4)]
    assert bodies == [b"1", b"2", b"3", b"4"]
    writer.close()


async def test_many_pipelined_requests_are_all_answered(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    count = MAX_PIPELINED * 4  # past the queue: reading pauses, then resumes
    writer.write(b"".join(post("/echo", b"%d" % n) for n in range(count)))
    bodies = [(await read_answer(reader)).body for _ in range(count)]
    assert bodies == [b"%d" % n for n in range(count)]
    writer.close()


async def test_garbage_after_a_pipelined_request_is_answered_after_it(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(post("/echo", b"ok") + b"NOT HTTP AT ALL\r\n\r\n")
    first = await read_answer(reader)
    second = await read_answer(reader)
    assert (first.status, first.body, second.status) == (200, b"ok", 400)
    assert await closed_by_server(reader)
    writer.close()


# -- timeouts ------------------------------------------------------------------------------------


async def test_a_connection_without_a_request_is_closed_after_the_idle_timeout(
    start: Start,
) -> None:
    running = await start(idle_timeout=0.3)
    reader, writer = await running.connect()
    assert await closed_by_server(reader)
    # And after an answer, the timer runs again.
    reader, writer = await running.connect()
    writer.write(post("/echo", b"x"))
    assert (await read_answer(reader)).body == b"x"
    assert await closed_by_server(reader)
    writer.close()


async def test_headers_trickling_in_do_not_reset_the_idle_timer(start: Start) -> None:
    running = await start(idle_timeout=0.5)
    reader, writer = await running.connect()
    started = time.monotonic()
    closed = asyncio.ensure_future(closed_by_server(reader))
    for byte in b"GET /echo HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
        if closed.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.01)
    assert await closed
    assert time.monotonic() - started < WITHIN
    writer.close()


# -- the client going away, backpressure ----------------------------------------------------------


async def test_a_client_leaving_mid_body_cancels_the_handler(start: Start) -> None:
    running: Running

    reading = asyncio.Event()

    async def waits(request: Request) -> StreamResponse:
        try:
            reading.set()
            await request.read()
        except asyncio.CancelledError:
            running.cancelled.set()
            raise
        return Response(200)

    running = await start({"/wait": waits})
    _, writer = await running.connect()
    writer.write(post("/wait", b"x" * 100)[:-50])
    await asyncio.wait_for(reading.wait(), WITHIN)  # the handler is waiting for the rest
    writer.close()
    await asyncio.wait_for(running.cancelled.wait(), WITHIN)


async def test_a_client_leaving_mid_stream_ends_the_handler(start: Start) -> None:
    running: Running
    ended: list[str] = []

    async def endless(request: Request) -> StreamResponse:
        response = StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(b"data: x\n\n")
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        except ConnectionResetError:
            ended.append("reset")
            return response
        finally:
            running.cancelled.set()

    running = await start({"/endless": endless})
    reader, writer = await running.connect()
    writer.write(get("/endless"))
    await asyncio.wait_for(reader.readuntil(b"data: x\n\n"), WITHIN)
    writer.transport.abort()
    await asyncio.wait_for(running.cancelled.wait(), WITHIN)
    assert ended in (["cancelled"], ["reset"])
    await async_wait_for(
        lambda: not running.server.connections, WITHIN, "the connection to be forgotten"
    )


async def test_a_slow_reader_holds_back_the_writer_then_gets_everything(start: Start) -> None:
    piece = b"z" * 65536
    pieces = 256  # 16 MiB, far more than the socket buffers hold
    written = {"n": 0}

    async def big(request: Request) -> StreamResponse:
        response = StreamResponse()
        await response.prepare(request)
        for _ in range(pieces):
            await response.write(piece)
            written["n"] += 1
        await response.write_eof()
        return response

    running = await start({"/big": big})
    reader, writer = await running.connect()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    writer.write(get("/big"))
    # Nobody reads: the writer stops well before the end, waiting for the buffer to drain.
    await async_wait_for(lambda: written["n"] > 0, WITHIN, "the first writes")
    (conn,) = running.server.connections
    await async_wait_for(lambda: conn.write_paused, WITHIN, "the server's writes to be paused")
    stalled = written["n"]
    await asyncio.sleep(0.2)
    assert written["n"] == stalled < pieces
    assert conn.transport is not None
    assert conn.transport.get_write_buffer_size() <= 2 * 65536 + len(piece) + 100
    answer = await read_answer(reader)
    assert answer.body == piece * pieces
    assert written["n"] == pieces
    writer.close()


# -- failures of the handler and of the server's own code ------------------------------------------


async def test_a_failing_handler_is_a_500_and_the_connection_serves_on(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: Request) -> StreamResponse:
        raise ValueError("secret request data")

    running = await start({"/broken": broken})
    reader, writer = await running.connect()
    writer.write(get("/broken") + get("/echo?after"))
    assert (await read_answer(reader)).status == 500
    assert (await read_answer(reader)).headers["x-query"] == "after"
    assert "ValueError" in caplog.text
    assert "secret" not in caplog.text
    writer.close()


async def test_a_crash_in_the_connection_code_closes_that_connection_only(
    start: Start, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await start()
    original = HttpProtocol.on_url

    def crash(self: HttpProtocol, url: bytes) -> None:
        if b"crash" in url:
            raise RuntimeError("secret url")
        original(self, url)

    monkeypatch.setattr(HttpProtocol, "on_url", crash)
    with caplog.at_level(logging.ERROR):
        reader, writer = await running.connect()
        writer.write(get("/crash"))
        assert await closed_by_server(reader)
    assert "RuntimeError" in caplog.text
    assert "secret" not in caplog.text
    reader, writer = await running.connect()  # the server still serves
    writer.write(get("/echo"))
    assert (await read_answer(reader)).status == 200
    writer.close()


async def test_an_upgrade_request_is_answered_over_http_1_1_then_closed(start: Start) -> None:
    running = await start()
    reader, writer = await running.connect()
    writer.write(get("/echo", "Upgrade: websocket", "Connection: Upgrade") + b"\x81\x05hello")
    answer = await read_answer(reader)
    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await closed_by_server(reader)
    writer.close()
