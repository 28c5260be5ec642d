"""The Gemini / Vertex AI simulator, over raw HTTP (no Google SDK in the venv)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from aiguillage.devtools.simulators import GeminiSimulator

from .conftest import GEMINI_KEY

BODY: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "Be brief"}]},
    "contents": [{"role": "user", "parts": [{"text": "Say hello to me"}]}],
}
KEY = {"x-goog-api-key": GEMINI_KEY}
VERTEX = "/v1/projects/p1/locations/europe-west4/publishers/google/models/gemini-2.5-flash"


def sse_events(raw: bytes) -> list[Any]:
    """Decode an SSE body the way a strict client would (CRLF or LF line ends)."""
    text = raw.decode().replace("\r\n", "\n")
    events = []
    for block in text.split("\n\n"):
        data = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


async def test_generate_content(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    async with http.post(url, json=BODY, headers=KEY) as resp:
        assert resp.status == 200
        body = await resp.json()
    candidate = body["candidates"][0]
    assert candidate["content"] == {
        "parts": [{"text": "Hello from gemini-eu! This is a simulated answer."}],
        "role": "model",
    }
    assert candidate["finishReason"] == "STOP"
    assert body["usageMetadata"]["promptTokenCount"] == 6
    assert body["usageMetadata"]["candidatesTokenCount"] == 8
    assert body["usageMetadata"]["totalTokenCount"] == 14
    assert body["modelVersion"] == "gemini-2.5-flash"
    assert gemini_sim.last_request.headers["x-goog-api-key"] == GEMINI_KEY


async def test_stream_sse(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    async with http.post(url, params={"alt": "sse"}, json=BODY, headers=KEY) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = await resp.read()
    assert raw.endswith(b"\r\n\r\n")
    events = sse_events(raw)
    assert len(events) == 4
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == "Hello from gemini-eu! This is a simulated answer."
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts)
    assert counts[-1] == 8
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, None, "STOP"]


async def test_stream_json_array(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    async with http.post(url, json=BODY, headers=KEY) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        items = json.loads(await resp.read())
    assert isinstance(items, list)
    assert len(items) == 4


async def test_function_call_and_max_tokens(
    gemini_sim: GeminiSimulator, http: aiohttp.ClientSession
) -> None:
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    tools = [{"functionDeclarations": [{"name": "get_weather"}, {"name": "get_time"}]}]
    async with http.post(url, json={**BODY, "tools": tools}, headers=KEY) as resp:
        body = await resp.json()
    assert body["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {}}}
    ]
    forced = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}
    async with http.post(
        url, json={**BODY, "tools": tools, "toolConfig": forced}, headers=KEY
    ) as resp:
        assert (await resp.json())["candidates"][0]["content"]["parts"][0]["functionCall"][
            "name"
        ] == "get_time"
    answered = {
        "contents": [
            *BODY["contents"],
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 20}}}],
            },
        ],
        "tools": tools,
    }
    async with http.post(url, json=answered, headers=KEY) as resp:
        assert "text" in (await resp.json())["candidates"][0]["content"]["parts"][0]
    cut = {**BODY, "generationConfig": {"maxOutputTokens": 3}}
    async with http.post(url, json=cut, headers=KEY) as resp:
        body = await resp.json()
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "Hello from gemini-eu!"


async def test_embeddings(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    base = gemini_sim.url + "/v1beta/models/text-embedding-004"
    content = {"parts": [{"text": "hello world"}]}
    async with http.post(base + ":embedContent", json={"content": content}, headers=KEY) as resp:
        single = (await resp.json())["embedding"]["values"]
    assert len(single) == 8
    batch = {
        "requests": [
            {"model": "models/text-embedding-004", "content": content, "outputDimensionality": 4}
        ]
    }
    async with http.post(base + ":batchEmbedContents", json=batch, headers=KEY) as resp:
        values = (await resp.json())["embeddings"][0]["values"]
    assert len(values) == 4


async def test_api_key_errors(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    async with http.post(url, json=BODY) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"
    async with http.post(url, json=BODY, headers={"x-goog-api-key": "nope"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    async with http.post(url, params={"key": GEMINI_KEY}, json=BODY) as resp:
        assert resp.status == 200
    async with http.post(url, json={"contents": []}, headers=KEY) as resp:
        assert resp.status == 400
        assert set((await resp.json())["error"]) == {"code", "message", "status"}


async def test_vertex_paths_use_bearer(
    gemini_sim: GeminiSimulator, http: aiohttp.ClientSession
) -> None:
    url = gemini_sim.url + VERTEX + ":generateContent"
    async with http.post(url, json=BODY, headers=KEY) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["status"] == "UNAUTHENTICATED"
    async with http.post(url, json=BODY, headers={"Authorization": f"Bearer {GEMINI_KEY}"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["candidates"][0]["content"]["role"] == "model"
    assert "createTime" in body
    stream_url = gemini_sim.url + VERTEX + ":streamGenerateContent?alt=sse"
    async with http.post(
        stream_url, json=BODY, headers={"Authorization": f"Bearer {GEMINI_KEY}"}
    ) as resp:
        assert len(sse_events(await resp.read())) == 4
    assert gemini_sim.last_request.path.startswith("/v1/projects/p1/locations/europe-west4/")


@pytest.mark.parametrize(("status", "name"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE")])
async def test_status_faults(
    gemini_sim: GeminiSimulator, http: aiohttp.ClientSession, status: int, name: str
) -> None:
    gemini_sim.set_faults([{"kind": "status", "status": status, "retry_after": 3}])
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    async with http.post(url, json=BODY, headers=KEY) as resp:
        assert resp.status == status
        assert resp.headers["Retry-After"] == "3"
        error = (await resp.json())["error"]
    assert (error["code"], error["status"]) == (status, name)


async def test_in_stream_error(gemini_sim: GeminiSimulator, http: aiohttp.ClientSession) -> None:
    gemini_sim.set_faults([{"kind": "in_stream_error", "after_chunks": 1}])
    url = gemini_sim.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    async with http.post(url, json=BODY, headers=KEY) as resp:
        assert resp.status == 200
        events = sse_events(await resp.read())
    assert "candidates" in events[0]
    assert events[1]["error"]["status"] == "UNAVAILABLE"
    assert len(events) == 2
