"""Every fault kind, as a client sees it; the plan's queue and repeat semantics."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai
import pytest

from aiguillage.devtools.simulators import Fault, OpenAISimulator

from .conftest import OPENAI_KEY

MESSAGES = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {OPENAI_KEY}"}


def client(sim: OpenAISimulator, **kwargs: object) -> openai.AsyncOpenAI:
    options: dict[str, object] = {"max_retries": 0, **kwargs}
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key=OPENAI_KEY, **options)


async def stream_text(c: openai.AsyncOpenAI, received: list[str]) -> None:
    stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)


async def test_status_with_retry_after(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults([{"kind": "status", "status": 429, "retry_after": 7}])
    with pytest.raises(openai.RateLimitError) as err:
        await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.response.headers["x-simulator"] == "mistral-eu"
    # the queue is consumed: the next request is answered normally
    ok = await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert ok.choices[0].message.content


async def test_queue_feeds_sdk_retries(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults(
        [
            {"kind": "status", "status": 503, "retry_after": 0.01},
            {"kind": "status", "status": 500, "retry_after": 0.01, "message": "boom"},
        ]
    )
    answer = await client(openai_sim, max_retries=2).chat.completions.create(
        model="m", messages=MESSAGES
    )
    assert answer.choices[0].message.content
    assert [r.fault for r in openai_sim.requests] == ["status", "status", None]


async def test_repeat_until_cleared(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults([Fault("drop"), Fault("status", status=503)], repeat=True)
    c = client(openai_sim)
    with pytest.raises(openai.APIConnectionError):
        await c.chat.completions.create(model="m", messages=MESSAGES)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="m", messages=MESSAGES)
    openai_sim.clear_faults()
    assert (await c.chat.completions.create(model="m", messages=MESSAGES)).choices


async def test_drop(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    openai_sim.set_faults([{"kind": "drop"}])
    with pytest.raises(openai.APIConnectionError):
        await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    openai_sim.set_faults([{"kind": "drop"}])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(openai_sim.url + "/v1/chat/completions", json={}, headers=AUTH)


async def test_slow_first_byte(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults([{"kind": "slow_first_byte", "delay": 0.3}])
    started = time.monotonic()
    answer = await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.3
    assert answer.choices[0].message.content
    openai_sim.set_faults([{"kind": "slow_first_byte", "delay": 5}])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client(openai_sim, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started < 2


async def test_stall_mid_stream(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults([{"kind": "stall_mid_stream", "after_chunks": 2}])
    received: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        await stream_text(client(openai_sim, timeout=0.3), received)
    assert received == ["Hello from", " mistral-eu! This"]


async def test_stall_released_on_stop(http: aiohttp.ClientSession) -> None:
    sim = OpenAISimulator("s")
    await sim.start()
    sim.set_faults([{"kind": "stall_mid_stream"}])
    resp = await http.post(
        sim.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
    )
    assert resp.status == 200
    started = time.monotonic()
    await sim.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_reset_mid_stream(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    openai_sim.set_faults([{"kind": "reset_mid_stream", "after_chunks": 3}])
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await stream_text(client(openai_sim), received)
    assert received == ["Hello from", " mistral-eu! This", " is a"]
    # non-streamed answers: headers and half the body, then the cut
    openai_sim.set_faults([{"kind": "reset_mid_stream"}])
    async with http.post(
        openai_sim.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=AUTH,
    ) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_stall_non_streamed(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    openai_sim.set_faults([{"kind": "stall_mid_stream"}])
    async with http.post(
        openai_sim.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=AUTH,
        timeout=aiohttp.ClientTimeout(sock_read=0.3),
    ) as resp:
        assert resp.status == 200
        with pytest.raises(asyncio.TimeoutError):
            await resp.read()


async def test_invalid_json(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    openai_sim.set_faults([{"kind": "invalid_json"}])
    async with http.post(
        openai_sim.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers=AUTH,
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        with pytest.raises(ValueError, match=r".+"):
            await resp.json()
    openai_sim.set_faults([{"kind": "invalid_json", "after_chunks": 1}])
    received: list[str] = []
    with pytest.raises(ValueError, match=r".+"):  # json.JSONDecodeError from the SDK's SSE parsing
        await stream_text(client(openai_sim), received)
    assert received == ["Hello from"]


async def test_in_stream_error(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults(
        [{"kind": "in_stream_error", "after_chunks": 1, "message": "model crashed"}]
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as err:
        await stream_text(client(openai_sim), received)
    assert received == ["Hello from"]
    assert err.value.message == "model crashed"
    assert err.value.type == "server_error"
    # on a non-streamed request it is the equivalent HTTP error
    openai_sim.set_faults([{"kind": "in_stream_error", "status": 503}])
    with pytest.raises(openai.InternalServerError) as http_err:
        await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert http_err.value.status_code == 503


async def test_chunk_interval_paces_the_stream(http: aiohttp.ClientSession) -> None:
    async with OpenAISimulator("paced", chunks=5, chunk_interval=0.05) as sim:
        arrivals: list[float] = []
        started = time.monotonic()
        async with http.post(
            sim.url + "/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
        ) as resp:
            buffer = b""
            async for data in resp.content.iter_any():
                buffer += data
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if b'"content":"' in event and b'"content":""' not in event:
                        arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 5
        assert arrivals[-1] - arrivals[0] >= 4 * 0.05 * 0.9


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault.from_dict({"kind": "explode"})
    with pytest.raises(ValueError, match="needs a 'status'"):
        Fault.from_dict({"kind": "status"})
    with pytest.raises(ValueError, match="unknown fault fields"):
        Fault.from_dict({"kind": "drop", "after": 1})
    with pytest.raises(ValueError, match="non-negative"):
        Fault.from_dict({"kind": "slow_first_byte", "delay": -1})
    fault = Fault.from_dict({"kind": "stall_mid_stream", "after_chunks": 2})
    assert fault.to_dict() == {"kind": "stall_mid_stream", "after_chunks": 2}
    assert Fault.from_dict(fault.to_dict()) == fault


# -- hostile answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect(
    status: int, openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    openai_sim.set_faults([{"kind": "redirect", "status": status, "location": "http://x.test/v1"}])
    async with http.post(
        openai_sim.url + "/v1/chat/completions", json={}, allow_redirects=False
    ) as resp:
        assert resp.status == status
        assert resp.headers["Location"] == "http://x.test/v1"
    openai_sim.set_faults([{"kind": "redirect", "location": "/elsewhere"}])
    async with http.post(
        openai_sim.url + "/any/path", json={}, allow_redirects=False
    ) as resp:  # no credentials, any path: the fault answers first
        assert resp.status == 307


async def test_raw_serves_exactly_the_bytes(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    body = b'{"choices": "\xff\xfe not utf-8'
    openai_sim.set_faults(
        [Fault.raw(body, status=299, headers={"content-type": "text/html", "x-a": "b"})]
    )
    async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
        assert resp.status == 299
        assert resp.headers["content-type"] == "text/html"
        assert resp.headers["x-a"] == "b"
        assert await resp.read() == body
    openai_sim.set_faults([Fault.raw(b"{}")])
    async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
        assert resp.status == 200
        assert "content-type" not in resp.headers  # none unless given
    openai_sim.set_faults([{"kind": "raw", "status": 101, "body": ""}])
    async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
        assert resp.status == 101


async def test_flood_of_a_given_size_plain_and_gzip(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    size = 3 * 1024 * 1024 + 5
    for encoding in ("identity", "gzip"):
        openai_sim.set_faults(
            [{"kind": "flood", "size": size, "body": "[", "fill": "0,", "encoding": encoding}]
        )
        async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
            assert resp.headers.get("content-encoding") == ("gzip" if encoding == "gzip" else None)
            wire = resp.content.total_compressed_bytes if encoding == "gzip" else None
            body = await resp.read()
            wire = resp.content.total_compressed_bytes if encoding == "gzip" else None
        assert len(body) == 1 + size
        assert body.startswith(b"[0,0,0,")
        if wire is not None:
            assert wire < size // 100  # a decompression bomb: tiny on the wire


async def test_endless_flood_stops_when_the_client_goes_away(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    openai_sim.set_faults([{"kind": "flood", "encoding": "gzip"}])
    async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > 64 * 1024 * 1024:
                break
    assert received > 64 * 1024 * 1024
    # the simulator is free again: the next request gets its normal answer
    answer = await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content


async def test_echo_credentials(openai_sim: OpenAISimulator) -> None:
    openai_sim.set_faults([{"kind": "echo_credentials"}])
    with pytest.raises(openai.BadRequestError) as err:
        await client(openai_sim).chat.completions.create(model="m", messages=MESSAGES)
    assert err.value.message.endswith(
        f"Incorrect credentials provided: authorization: Bearer {OPENAI_KEY}"
    )


def test_hostile_fault_validation_and_json_form() -> None:
    with pytest.raises(ValueError, match="needs a 'location'"):
        Fault.from_dict({"kind": "redirect"})
    with pytest.raises(ValueError, match="301, 302, 303, 307 or 308"):
        Fault.from_dict({"kind": "redirect", "location": "/x", "status": 304})
    with pytest.raises(ValueError, match="needs a 'body'"):
        Fault.from_dict({"kind": "raw"})
    with pytest.raises(ValueError, match="between 100 and 999"):
        Fault.from_dict({"kind": "raw", "body": "", "status": 1000})
    with pytest.raises(ValueError, match="'body' or 'body_base64', not both"):
        Fault.from_dict({"kind": "raw", "body": "", "body_base64": ""})
    with pytest.raises(ValueError, match="must be base64"):
        Fault.from_dict({"kind": "raw", "body_base64": "!!"})
    with pytest.raises(ValueError, match="identity or gzip"):
        Fault.from_dict({"kind": "flood", "encoding": "br"})
    with pytest.raises(ValueError, match="map header names to strings"):
        Fault.from_dict({"kind": "raw", "body": "", "headers": {"a": 1}})
    raw = Fault.raw(b"\xff", status=600, headers={"content-type": "text/plain"})
    assert raw.to_dict() == {
        "kind": "raw",
        "status": 600,
        "headers": {"content-type": "text/plain"},
        "body_base64": "/w==",
    }
    flood = Fault.from_dict({"kind": "flood", "size": 10, "fill": "x", "encoding": "gzip"})
    for fault in (raw, flood):
        assert Fault.from_dict(fault.to_dict()) == fault
