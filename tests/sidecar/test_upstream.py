"""The HTTP boundary to providers (``upstream.py``): errors mapped to types, SSE parsing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar import upstream
from aiguillage.sidecar.adapters.base import UpstreamRequest
from aiguillage.sidecar.config import Limits, Timeouts
from aiguillage.sidecar.errors import ConnectFailed, TimedOut, UpstreamProtocol, UpstreamStatus
from tests.sidecar.conftest import EU_KEY, closed_port

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
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = upstream.new_session()
    yield s
    await s.close()


def chat_request(sim: OpenAISimulator, key: str = EU_KEY, body: bytes = CHAT) -> UpstreamRequest:
    return UpstreamRequest(
        sim.url + "/v1/chat/completions",
        {"content-type": "application/json", "authorization": f"Bearer {key}"},
        body,
    )


async def test_send_returns_a_2xx_response(
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    resp = await upstream.send(session, chat_request(eu), QUICK)
    try:
        assert resp.status == 200
    finally:
        resp.close()


async def test_connection_refused_is_connect_failed(session: aiohttp.ClientSession) -> None:
    req = UpstreamRequest(f"http://127.0.0.1:{closed_port()}/v1/chat/completions", {}, b"{}")
    with pytest.raises(ConnectFailed) as caught:
        await upstream.send(session, req, QUICK)
    assert caught.value.retryable
    assert caught.value.failover


async def test_error_status_keeps_body_and_retry_after(
    session: aiohttp.ClientSession, eu: OpenAISimulator
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
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    with pytest.raises(UpstreamStatus) as caught:
        await upstream.send(session, chat_request(eu, key="sk-wrong"), QUICK)
    assert caught.value.status == 401
    assert caught.value.failover
    assert not caught.value.retryable


async def test_no_first_byte_in_time_is_timed_out(
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "slow_first_byte", "delay": 5}])
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await upstream.send(session, chat_request(eu), NO_FIRST_BYTE)
    assert time.monotonic() - started < 2


async def test_cut_body_is_a_protocol_error(
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "reset_mid_stream"}])
    resp = await upstream.send(
        session, chat_request(eu, body=CHAT.replace(b"true", b"false")), QUICK
    )
    with pytest.raises(UpstreamProtocol):
        await upstream.read_body(resp, Limits().max_response_bytes)
    resp.close()


async def test_stalled_body_times_out(session: aiohttp.ClientSession, eu: OpenAISimulator) -> None:
    eu.set_faults([{"kind": "stall_mid_stream"}])
    resp = await upstream.send(
        session, chat_request(eu, body=CHAT.replace(b"true", b"false")), IDLE
    )
    with pytest.raises(TimedOut):
        await upstream.read_body(resp, Limits().max_response_bytes)
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


async def events_of(session: aiohttp.ClientSession, url: str) -> list[tuple[str | None, bytes]]:
    resp = await upstream.send(session, UpstreamRequest(url, {}, b""), QUICK)
    try:
        return [e async for e in upstream.sse_events(resp, Limits())]
    finally:
        resp.close()


async def test_sse_events(session: aiohttp.ClientSession, serve_bytes: Serve) -> None:
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
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "reset_mid_stream", "after_chunks": 1}])
    resp = await upstream.send(session, chat_request(eu), QUICK)
    with pytest.raises(UpstreamProtocol):
        [e async for e in upstream.sse_events(resp, Limits())]
    resp.close()


async def test_sse_stream_stall_is_timed_out(
    session: aiohttp.ClientSession, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "stall_mid_stream", "after_chunks": 1}])
    resp = await upstream.send(session, chat_request(eu), IDLE)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        [e async for e in upstream.sse_events(resp, Limits())]
    assert time.monotonic() - started < 2
    resp.close()
