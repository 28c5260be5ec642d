"""The HTTP boundary to providers (``upstream.py``): errors mapped to types, SSE parsing."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from email.utils import formatdate
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from aiguillage.devtools import processes
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators import Fault
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar import upstream
from aiguillage.sidecar.adapters.base import (
    Call,
    Operation,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from aiguillage.sidecar.adapters.openai import OpenAIAdapter
from aiguillage.sidecar.config import Provider, SizeLimits, Timeouts
from aiguillage.sidecar.errors import (
    ConnectFailed,
    MalformedAnswer,
    Redirected,
    ResponseTooLarge,
    TimedOut,
    UnexpectedContent,
    UnexpectedStatus,
    UpstreamProtocol,
    UpstreamStatus,
)
from tests.sidecar.conftest import (
    CREDENTIALS,
    EU_KEY,
    StartSidecar,
    closed_port,
    eu_target,
    provider_for,
    two_provider_config,
    us_target,
    wait_for,
    write_files,
)
from tests.sidecar.conftest import route as conftest_route

QUICK = Timeouts(connect=2, first_token=5, stream_idle=5, total=10)
# one deadline short at a time, for the tests of that deadline
NO_FIRST_BYTE = Timeouts(connect=2, first_token=0.3, stream_idle=5, total=10)
IDLE = Timeouts(connect=2, first_token=5, stream_idle=0.3, total=10)
CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the precise one wins
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": formatdate(0, usegmt=True)}, 0.0),  # a date in the past
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert upstream.retry_after(headers) == expected


def test_retry_after_http_date_in_the_future() -> None:
    value = upstream.retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert value is not None
    assert 28 <= value <= 31


# -- send ----------------------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[upstream.Client]:
    s = upstream.new_client()
    yield s
    await s.close()


def chat_request(sim: OpenAISimulator, key: str = EU_KEY, body: bytes = CHAT) -> UpstreamRequest:
    return UpstreamRequest(
        sim.url + "/v1/chat/completions",
        {"content-type": "application/json", "authorization": f"Bearer {key}"},
        body,
    )


async def test_send_returns_a_2xx_response(session: upstream.Client, eu: OpenAISimulator) -> None:
    resp = await upstream.send(session, chat_request(eu), QUICK)
    try:
        assert resp.status == 200
    finally:
        resp.close()


async def test_connection_refused_is_connect_failed(session: upstream.Client) -> None:
    req = UpstreamRequest(f"http://127.0.0.1:{closed_port()}/v1/chat/completions", {}, b"{}")
    with pytest.raises(ConnectFailed) as caught:
        await upstream.send(session, req, QUICK)
    assert caught.value.retryable
    assert caught.value.failover


async def test_error_status_keeps_body_and_retry_after(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "status", "status": 429, "retry_after": 2}])
    with pytest.raises(UpstreamStatus) as caught:
        await upstream.send(session, chat_request(eu), QUICK)

    err = caught.value
    assert err.status == 429
    assert err.retry_after == 2.0
    assert b"Rate limit reached" in err.body
    assert err.content_type.startswith("application/json")


async def test_wrong_key_is_401_failover_without_retry(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    with pytest.raises(UpstreamStatus) as caught:
        await upstream.send(session, chat_request(eu, key="sk-wrong"), QUICK)
    assert caught.value.status == 401
    assert caught.value.failover
    assert not caught.value.retryable


async def test_no_first_byte_in_time_is_timed_out(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "slow_first_byte", "delay": 5}])
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await upstream.send(session, chat_request(eu), NO_FIRST_BYTE)
    assert time.monotonic() - started < 2


async def test_cut_body_is_a_protocol_error(session: upstream.Client, eu: OpenAISimulator) -> None:
    eu.set_faults([{"kind": "reset_mid_stream"}])
    resp = await upstream.send(
        session, chat_request(eu, body=CHAT.replace(b"true", b"false")), QUICK
    )
    with pytest.raises(UpstreamProtocol):
        await upstream.read_body(resp, SizeLimits().max_response_bytes)
    resp.close()


async def test_stalled_body_times_out(session: upstream.Client, eu: OpenAISimulator) -> None:
    eu.set_faults([{"kind": "stall_mid_stream"}])
    resp = await upstream.send(
        session, chat_request(eu, body=CHAT.replace(b"true", b"false")), IDLE
    )
    with pytest.raises(TimedOut):
        await upstream.read_body(resp, SizeLimits().max_response_bytes)
    resp.close()


# -- SSE parsing ---------------------------------------------------------------------------------

Serve = Callable[[bytes], Awaitable[str]]


@pytest.fixture
async def serve_bytes() -> AsyncIterator[Serve]:
    """``await serve_bytes(body)`` -> URL answering exactly ``body`` as an event stream."""
    runners: list[web.AppRunner] = []

    async def serve(body: bytes) -> str:
        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(body)
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def events_of(session: upstream.Client, url: str) -> list[tuple[str | None, bytes]]:
    resp = await upstream.send(session, UpstreamRequest(url, {}, b""), QUICK)
    try:
        return [e async for batch in upstream.sse_events(resp, SizeLimits()) for e in batch]
    finally:
        resp.close()


async def test_sse_events(session: upstream.Client, serve_bytes: Serve) -> None:
    url = await serve_bytes(
        b": a comment, ignored\n"
        b"data: one\n\n"
        b"event: response.created\r\n"
        b'data: {"a": 1}\r\n\r\n'
        b"data:no-space\n"
        b"data: second line\n"
        b"id: 7\n\n"
        b"\n\n"
        b"data: last, without a blank line"
    )

    assert await events_of(session, url) == [
        (None, b"one"),
        ("response.created", b'{"a": 1}'),
        (None, b"no-space\nsecond line"),
        (None, b"last, without a blank line"),
    ]


async def test_sse_stream_cut_is_a_protocol_error(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "reset_mid_stream", "after_chunks": 1}])
    resp = await upstream.send(session, chat_request(eu), QUICK)
    with pytest.raises(UpstreamProtocol):
        [e async for batch in upstream.sse_events(resp, SizeLimits()) for e in batch]
    resp.close()


async def test_sse_stream_stall_is_timed_out(session: upstream.Client, eu: OpenAISimulator) -> None:
    eu.set_faults([{"kind": "stall_mid_stream", "after_chunks": 1}])
    resp = await upstream.send(session, chat_request(eu), IDLE)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        [e async for batch in upstream.sse_events(resp, SizeLimits()) for e in batch]
    assert time.monotonic() - started < 2
    resp.close()


# -- redirects, statuses, cookies ----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_refused_never_followed(
    status: int, session: upstream.Client, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    elsewhere = us.url + "/v1/chat/completions?token=secret"
    eu.set_faults([{"kind": "redirect", "status": status, "location": elsewhere}])
    with pytest.raises(Redirected) as caught:
        await upstream.send(session, chat_request(eu), QUICK)

    err = caught.value
    assert (err.outcome, err.status) == ("redirect_refused", status)
    assert str(err) == f"provider answered HTTP {status} redirecting to {us.url} (not followed)"
    assert (err.retryable, err.failover) == (False, True)
    assert us.requests == []


async def test_a_relative_redirect_is_refused_too(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "redirect", "location": "/v2/chat/completions"}])
    with pytest.raises(Redirected, match=f"redirecting to {eu.url} "):
        await upstream.send(session, chat_request(eu), QUICK)
    assert len(eu.requests) == 1


@pytest.mark.parametrize("status", [101, 600, 999])
async def test_a_status_no_api_answers_is_unexpected(
    status: int, session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([Fault.raw(b"{}", status=status, headers={"content-type": "application/json"})])
    with pytest.raises(UnexpectedStatus) as caught:
        await upstream.send(session, chat_request(eu), QUICK)
    assert (caught.value.outcome, caught.value.status) == ("unexpected_status", status)
    assert not caught.value.retryable


async def test_a_huge_error_body_keeps_the_status_without_the_body(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "raw", "status": 400, "body": "x" * (upstream.ERROR_BODY_LIMIT + 1)}])
    with pytest.raises(UpstreamStatus) as caught:
        await upstream.send(session, chat_request(eu), QUICK)
    assert (caught.value.status, caught.value.body) == (400, b"")


async def test_cookies_a_provider_sets_are_never_sent_back(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    cookie = "session=for-client-a; Path=/; Max-Age=3600"
    eu.set_faults(
        [Fault.raw(b"{}", headers={"content-type": "application/json", "set-cookie": cookie})]
    )
    # By name, not IP address: a cookie jar would keep cookies for a name.
    req = chat_request(eu)
    req = UpstreamRequest(req.url.replace("127.0.0.1", "localhost"), req.headers, req.body)
    first = await upstream.send(session, req, QUICK)
    first.release()
    second = await upstream.send(session, req, QUICK)
    second.release()

    assert "cookie" not in eu.requests[1].headers


# -- whole answers: content type, emptiness, size ------------------------------------------------

ADAPTER = OpenAIAdapter(Provider(api="openai", endpoint="http://x/v1"), None)
CALL = Call(Operation.CHAT, {"model": "m", "messages": []}, False)
SMALL = SizeLimits(max_response_bytes=64 * 1024, max_event_bytes=4 * 1024)
ANSWER = b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1}}'


async def answer_of(
    session: upstream.Client, sim: OpenAISimulator, fault: Fault, limits: SizeLimits = SMALL
) -> tuple[bytes, Usage]:
    sim.set_faults([fault])
    resp = await upstream.send(session, chat_request(sim), QUICK)
    return await upstream.read_answer(resp, ADAPTER, CALL, "m", limits)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/json", None]
)
async def test_json_answers_are_read(
    content_type: str | None, session: upstream.Client, eu: OpenAISimulator
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body, usage = await answer_of(session, eu, Fault.raw(ANSWER, headers=headers))
    assert body == ANSWER
    assert usage.input_tokens == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            Fault.raw(b"<html>login</html>", headers={"content-type": "text/html"}),
            "provider answered 200 with text/html, not JSON",
        ),
        (
            Fault.raw(b"", headers={"content-type": "application/json"}),
            "provider answered 200 with an empty body",
        ),
        (Fault.raw(b"", status=204), "provider answered 204 with an empty body"),
    ],
    ids=["html", "empty", "204"],
)
async def test_an_answer_that_is_not_json_or_empty_is_unexpected_content(
    fault: Fault, message: str, session: upstream.Client, eu: OpenAISimulator
) -> None:
    with pytest.raises(UnexpectedContent) as caught:
        await answer_of(session, eu, fault)
    assert str(caught.value) == message
    assert (caught.value.outcome, caught.value.retryable) == ("unexpected_content", False)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.raw(b"[" + b"0," * 40_000 + b"0]", headers={"content-type": "application/json"}),
        Fault("flood"),  # endless
        Fault("flood", encoding="gzip"),  # endless, and tiny on the wire
        Fault("flood", size=10 * 1024 * 1024, encoding="gzip"),
    ],
    ids=["announced", "endless", "endless-gzip", "gzip-bomb"],
)
async def test_an_answer_past_the_limit_is_too_large(
    fault: Fault, session: upstream.Client, eu: OpenAISimulator
) -> None:
    with pytest.raises(ResponseTooLarge) as caught:
        await answer_of(session, eu, fault)
    assert caught.value.outcome == "response_too_large"
    assert "65536" in str(caught.value)


async def test_an_answer_at_the_limit_passes(session: upstream.Client, eu: OpenAISimulator) -> None:
    padded = ANSWER[:-1] + b', "pad": "' + b"x" * (SMALL.max_response_bytes - len(ANSWER) - 11)
    padded += b'"}'
    assert len(padded) == SMALL.max_response_bytes
    gzip = Fault("flood", size=0, body=padded, encoding="gzip")
    for fault in (Fault.raw(padded), gzip):
        body, _ = await answer_of(session, eu, fault)
        assert body == padded


class Exploding(OpenAIAdapter):
    """An adapter with a bug on some provider data."""

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        raise KeyError("a completion that must not be logged")


async def test_whatever_an_adapter_raises_is_a_malformed_answer_named_by_type(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([Fault.raw(ANSWER)])
    resp = await upstream.send(session, chat_request(eu), QUICK)
    adapter = Exploding(Provider(api="openai", endpoint="http://x/v1"), None)
    with pytest.raises(MalformedAnswer) as caught:
        await upstream.read_answer(resp, adapter, CALL, "m", SMALL)
    assert str(caught.value) == "provider's answer could not be read (KeyError)"
    assert caught.value.outcome == "protocol_error"


# -- SSE lines and events ------------------------------------------------------------------------


def parsed(pieces: list[bytes], cap: int = 64) -> list[tuple[str | None, bytes]]:
    parser = upstream.SSEParser(cap)
    out = [e for piece in pieces for e in parser.feed(piece)]
    return out + parser.end()


def test_sse_parser_joins_lines_split_anywhere() -> None:
    stream = (
        b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\n: c\ndata: "
        + b"x" * 40
        + b"\n\ndata: {\rdata: }\r\rdata: end"
    )
    expected = [("a", b"1\n2"), (None, b"x" * 40), (None, b"{\n}"), (None, b"end")]
    for size in (1, 2, 3, 7, len(stream)):
        assert parsed([stream[i : i + size] for i in range(0, len(stream), size)]) == expected


def test_sse_parser_reads_one_line_data_events_and_every_other_line_alike() -> None:
    # One-line "data: " events (read whole) between the others (read line by line).
    stream = (
        b"data: 1\n\ndata: \n\ndata: 2\n\n\ndata: 3\ndata: 4\n\nevent: e\ndata: 5\n\n"
        b"data: " + b"x" * 58 + b"\n\ndata:6\n\n: c\n\ndata: 7\n\ndata: 8\n\n"
    )
    expected = [
        (None, b"1"), (None, b""), (None, b"2"), (None, b"3\n4"), ("e", b"5"),
        (None, b"x" * 58), (None, b"6"), (None, b"7"), (None, b"8"),
    ]  # fmt: skip
    for size in range(1, len(stream) + 1):
        assert parsed([stream[i : i + size] for i in range(0, len(stream), size)]) == expected


def spec_events(stream: bytes) -> list[tuple[str | None, bytes]]:
    """The events of a whole stream, read line by line as the SSE spec says (the rules the
    parser follows, however the stream is cut): the reference for the test below."""
    events: list[tuple[str | None, bytes]] = []
    event: str | None = None
    data: list[bytes] = []
    for line in [*stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"), b""]:
        if not line:
            if data:
                events.append((event, b"\n".join(data)))
            event, data = None, []
        elif line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
    return events


SSE_PIECES = [b"data: ", b"data:", b"event: ", b"e", b"x", b"{}", b": c", b" ", b"\n", b"\n\n",
              b"\r", b"\r\n"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(SSE_PIECES), max_size=60),
    st.lists(st.integers(1, 24), min_size=1, max_size=12),
)
def test_sse_parser_reads_any_stream_cut_anywhere_as_the_spec_does(
    pieces: list[bytes], sizes: list[int]
) -> None:
    stream = b"".join(pieces)
    cut, at, i = [], 0, 0
    while at < len(stream):
        cut.append(stream[at : at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    assert parsed(cut, cap=1 << 20) == spec_events(stream)


@pytest.mark.parametrize(
    ("pieces", "error", "message"),
    [
        ([b"data: " + b"x" * 65], ResponseTooLarge, "SSE line over 64 bytes"),
        ([b"data: 1\n\ndata: " + b"x" * 59 + b"\n\n"], ResponseTooLarge, "SSE line over 64"),
        ([b"data: " + b"x" * 30, b"x" * 40, b"\n\n"], ResponseTooLarge, "SSE line over 64 bytes"),
        ([b": " + b"x" * 70 + b"\n"], ResponseTooLarge, "SSE line over 64 bytes"),
        ([b"data: " + b"x" * 40 + b"\n"] * 2, ResponseTooLarge, "SSE event over 64 bytes"),
        ([b"event: \xff\xfe\ndata: {}\n\n"], MalformedAnswer, "event name that is not UTF-8"),
    ],
    ids=["line", "whole-event-line", "line-in-pieces", "comment", "event", "name"],
)
def test_sse_parser_refuses_what_is_too_long_or_not_utf8(
    pieces: list[bytes], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parsed(pieces)


def test_sse_parser_returns_the_events_before_an_error_first() -> None:
    parser = upstream.SSEParser(64)
    assert parser.feed(b"data: 1\n\nevent: \xff\ndata: 2\n\n") == [(None, b"1")]
    with pytest.raises(MalformedAnswer):
        parser.feed(b"data: 3\n\n")
    with pytest.raises(MalformedAnswer):
        parser.end()


async def test_a_600_kib_event_passes_with_the_default_limits(
    session: upstream.Client, serve_bytes: Serve
) -> None:
    big = b'{"type": "response.completed", "text": "' + b"y" * 600 * 1024 + b'"}'
    url = await serve_bytes(b"event: response.completed\ndata: " + big + b"\n\n")
    assert await events_of(session, url) == [("response.completed", big)]


async def test_a_compressed_stream_counts_its_decoded_size(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults(
        [Fault("flood", body=b"data: ", content_type="text/event-stream", encoding="gzip")]
    )
    resp = await upstream.send(session, chat_request(eu), QUICK)
    try:
        with pytest.raises(ResponseTooLarge, match="SSE line over 4096 bytes"):
            [e async for batch in upstream.sse_events(resp, SMALL) for e in batch]
    finally:
        resp.close()


class Broken(StreamTranslator):
    def __init__(self) -> None:
        self.usage, self.done = Usage(), False

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        return [data.decode("ascii")]  # type: ignore[list-item]  # a bug: bytes expected


async def test_a_stream_of_the_wrong_content_type_is_unexpected_content(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    eu.set_faults([Fault.raw(ANSWER, headers={"content-type": "application/json"})])
    resp = await upstream.send(session, chat_request(eu), QUICK)
    chunks = upstream.translate(resp, "sse", Broken(), SMALL)
    with pytest.raises(UnexpectedContent, match="stream request 200 with application/json, not"):
        await anext(chunks)
    resp.close()


async def test_whatever_a_translator_raises_is_a_malformed_answer(
    session: upstream.Client, eu: OpenAISimulator
) -> None:
    body = b"data: \xc3\xa9\n\n"
    eu.set_faults([Fault.raw(body, headers={"content-type": "text/event-stream"})])
    resp = await upstream.send(session, chat_request(eu), QUICK)
    chunks = upstream.translate(resp, "sse", Broken(), SMALL)
    with pytest.raises(MalformedAnswer, match=r"could not be read \(UnicodeDecodeError\)"):
        await anext(chunks)
    resp.close()


# -- memory, measured on a sidecar process -------------------------------------------------------

RSS_BOUND_MB = 100


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_peak_memory_stays_flat_under_a_gzip_bomb_and_endless_bodies(
    lt: LoopThread, tmp_path: Path, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    config = two_provider_config(eu, us, conftest_route("chat", eu_target(0), us_target(1)))
    write_files(tmp_path / "config", tmp_path / "credentials", config, CREDENTIALS)
    port = closed_port()
    argv = processes.aiguillage(
        "sidecar", "--config-dir", str(tmp_path / "config"), "--listen", f"127.0.0.1:{port}"
    )
    env = {**os.environ, "AIGUILLAGE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    child = processes.Child("sidecar", argv, env, tmp_path / "sidecar.log").start()
    base = f"http://127.0.0.1:{port}"

    def ask(stream: bool) -> tuple[int, str]:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        req = urllib.request.Request(
            base + "/v1/chat/completions",
            data=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
            return resp.status, resp.headers.get("x-aiguillage-provider", "")

    try:
        wait_for(lambda: _ready(base), 30, "the sidecar process to be ready")
        assert ask(stream=False) == (200, "mistral-eu")  # warm: imports, connections, buffers
        before = peak_rss_mb(child.proc.pid)  # type: ignore[union-attr]
        for fault, stream in [
            (Fault("flood", encoding="gzip", size=4 * 1024**3), False),  # ~4 MiB on the wire
            (Fault("flood"), False),  # endless
            (
                Fault("flood", body=b"data: ", content_type="text/event-stream", encoding="gzip"),
                True,
            ),
        ]:
            eu.set_faults([fault])
            assert ask(stream) == (200, "openai-us")  # the bomb failed the attempt: failover
        growth = peak_rss_mb(child.proc.pid) - before  # type: ignore[union-attr]
    finally:
        child.stop()
    records = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    outcomes = [
        [a["outcome"] for a in record["attempts"]]
        for record in records
        if record.get("kind") != "checkpoint"  # the audit chain's final checkpoint
    ]
    assert outcomes[1:] == [["response_too_large", "ok"]] * 3
    print(f"sidecar peak RSS {before:.1f} MB before, +{growth:.1f} MB after the bombs")
    assert growth < RSS_BOUND_MB, f"peak RSS grew by {growth:.1f} MB"


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
            return resp.status == 200  # type: ignore[no-any-return]
    except OSError:
        return False


def test_a_cookie_set_for_one_client_never_reaches_the_provider_with_another(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    # The provider by host name: aiohttp's default jar keeps no cookie for an IP address.
    by_name = provider_for(
        None,
        location="FR",
        jurisdiction="FR",
        credential="mistral-eu",
        endpoint=eu.url.replace("127.0.0.1", "localhost") + "/v1",
    )
    sc = start_sidecar(
        two_provider_config(eu, us, conftest_route("chat", eu_target(0)), **{"mistral-eu": by_name})
    )
    answer = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}'
    cookie = "session=client-a; Path=/; Max-Age=3600"
    headers = {"content-type": "application/json", "set-cookie": cookie}
    eu.set_faults([Fault.raw(answer, headers=headers)])
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    first = sc.raw("POST", "/v1/chat/completions", json=body, headers={"x-client": "a"})
    second = sc.raw("POST", "/v1/chat/completions", json=body, headers={"x-client": "b"})

    assert (first.status, second.status) == (200, 200)
    assert "set-cookie" not in first.headers  # not relayed to the client either
    assert [r.headers.get("cookie") for r in eu.requests] == [None, None]
