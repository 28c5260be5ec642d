"""The admin API under ``/_sim/`` (what another process uses), and the shared helpers."""

from __future__ import annotations

import aiohttp
import pytest

from aiguillage.devtools.simulators import AnthropicSimulator, OpenAISimulator, Simulator
from aiguillage.devtools.simulators.answers import count_words, embedding_vector

from .conftest import ANTHROPIC_KEY, OPENAI_KEY

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
AUTH = {"Authorization": f"Bearer {OPENAI_KEY}"}


async def test_faults_over_http(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    admin = openai_sim.url + "/_sim/faults"
    plan = {
        "faults": [
            {"kind": "status", "status": 503},
            {"kind": "status", "status": 429, "retry_after": 2},
        ]
    }
    async with http.post(admin, json=plan) as resp:
        assert resp.status == 200
        assert (await resp.json())["faults"][1] == {
            "kind": "status",
            "status": 429,
            "retry_after": 2.0,
        }
    statuses = []
    for _ in range(3):
        async with http.post(
            openai_sim.url + "/v1/chat/completions", json=CHAT, headers=AUTH
        ) as resp:
            statuses.append(resp.status)
    assert statuses == [503, 429, 200]
    async with http.get(admin) as resp:
        assert await resp.json() == {"faults": [], "repeat": False}

    async with http.post(
        admin, json={"faults": [{"kind": "status", "status": 500}], "repeat": True}
    ) as resp:
        assert resp.status == 200
    for _ in range(2):
        async with http.post(
            openai_sim.url + "/v1/chat/completions", json=CHAT, headers=AUTH
        ) as resp:
            assert resp.status == 500
    async with http.delete(admin) as resp:
        assert resp.status == 200
    async with http.post(openai_sim.url + "/v1/chat/completions", json=CHAT, headers=AUTH) as resp:
        assert resp.status == 200

    async with http.post(admin, json={"kind": "drop"}) as resp:  # a bare fault is accepted too
        assert (await resp.json())["faults"] == [{"kind": "drop"}]
    for bad in ({"faults": [{"kind": "nope"}]}, {"faults": "x"}, {"faults": [], "repeat": "yes"}):
        async with http.post(admin, json=bad) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()
    async with http.post(admin, data=b"{oops") as resp:
        assert resp.status == 400


async def test_request_log_over_http(
    anthropic_sim: AnthropicSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    async with http.post(
        anthropic_sim.url + "/v1/messages?beta=true", json=body, headers=headers
    ) as resp:
        assert resp.status == 200
    async with http.get(anthropic_sim.url + "/_sim/requests") as resp:
        log = (await resp.json())["requests"]
    assert len(log) == 1  # admin calls are not logged
    entry = log[0]
    assert entry["method"] == "POST"
    assert entry["path"] == "/v1/messages"
    assert entry["query"] == {"beta": "true"}
    assert entry["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert entry["headers"]["anthropic-version"] == "2023-06-01"
    assert entry["body"] == body
    assert entry["fault"] is None
    assert entry["time"] > 1_600_000_000
    async with http.delete(anthropic_sim.url + "/_sim/requests") as resp:
        assert resp.status == 200
    assert anthropic_sim.requests == []


async def test_config_health_and_clear(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(openai_sim.url + "/_sim/health") as resp:
        assert await resp.json() == {"status": "ok", "name": "mistral-eu", "kind": "openai"}
    async with http.post(
        openai_sim.url + "/_sim/config", json={"chunks": 64, "chunk_interval": 0}
    ) as resp:
        assert (await resp.json())["chunks"] == 64
    assert openai_sim.chunks == 64
    assert len(openai_sim.answer().pieces) == 64
    async with http.post(openai_sim.url + "/_sim/config", json={"chunks": 0}) as resp:
        assert resp.status == 400
    async with http.post(openai_sim.url + "/_sim/config", json={"name": "x"}) as resp:
        assert resp.status == 400
    async with http.get(openai_sim.url + "/_sim/config") as resp:
        assert (await resp.json())["api_key_required"] is True
    async with http.post(openai_sim.url + "/v1/models/x", json={}, headers=AUTH) as resp:
        assert resp.status == 404  # unknown route (or method): provider-shaped 404, logged
        assert (await resp.json())["error"]["message"] == "Invalid URL (POST /v1/models/x)"
    assert openai_sim.last_request.path == "/v1/models/x"
    openai_sim.set_faults([{"kind": "drop"}])
    openai_sim.clear()
    assert openai_sim.requests == []
    assert openai_sim.faults.to_dict() == {"faults": [], "repeat": False}


async def test_lifecycle() -> None:
    sim = OpenAISimulator("x")
    with pytest.raises(RuntimeError):
        _ = sim.url
    url = await sim.start()
    assert url.startswith("http://127.0.0.1:")
    assert sim.url == url
    with pytest.raises(RuntimeError):
        await sim.start()
    await sim.stop()
    await sim.stop()  # idempotent
    assert not sim.started


def test_answer_shape() -> None:
    sim = Simulator("eu-1", chunks=4)
    answer = sim.answer()
    assert answer.text == "Hello from eu-1! This is a simulated answer."
    assert "".join(answer.pieces) == answer.text
    assert (len(answer.pieces), answer.tokens, answer.truncated) == (4, 8, False)
    long = Simulator("eu-1", chunks=20).answer()
    assert (len(long.pieces), long.tokens) == (20, 20)
    assert long.text.startswith(answer.text)
    cut = sim.answer(3)
    assert (cut.text, cut.tokens, cut.truncated) == ("Hello from eu-1!", 3, True)
    assert sim.answer(100) is sim.answer()
    assert sim.answer(True) is sim.answer()
    assert Simulator("z", reply="Bonjour de {name}").answer().text.startswith("Bonjour de z")


def test_helpers() -> None:
    assert (
        count_words(
            {
                "model": "a b",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x y"}]}],
            }
        )
        == 2
    )
    assert count_words({"system": "one two", "contents": [{"parts": [{"text": "three"}]}]}) == 3
    vector = embedding_vector("hello", 16)
    assert len(vector) == 16
    assert vector == embedding_vector("hello", 16)
    assert vector != embedding_vector("bye", 16)
