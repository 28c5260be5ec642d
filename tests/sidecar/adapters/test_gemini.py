"""The Gemini API adapter (adapters/gemini.py) through a real sidecar and the openai SDK.

The simulated Gemini API checks the ``x-goog-api-key`` header and the documented paths
(``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:batchEmbedContents``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.devtools.simulators.gemini import GeminiSimulator
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.gemini import GeminiAdapter
from aiguillage.sidecar.config import Provider, Target
from tests.sidecar.adapters._sidecar import route, running_sidecar

KEY = "gemini-key-0001"
MODEL = "gemini-2.5-flash"
HELLO = "Hello from gemini-sim! This is a simulated answer."
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def collect(stream: Any, into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.choices[0].delta.content or "")


@pytest.fixture
async def sim() -> AsyncIterator[GeminiSimulator]:
    simulator = GeminiSimulator("gemini-sim", api_key=KEY, models=[MODEL, "text-embedding-004"])
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: GeminiSimulator, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    provider = Provider(
        api="gemini", endpoint=sim.url + "/v1beta", location="US", credential="gemini"
    )
    routes = [
        route("chat", Target(provider="gemini", model=MODEL)),
        route("embed", Target(provider="gemini", model="text-embedding-004")),
    ]
    async with running_sidecar(tmp_path, {"gemini": provider}, routes, {"gemini": KEY}) as c:
        yield c


def test_bare_host_endpoint_gets_the_v1beta_path() -> None:
    adapter = GeminiAdapter(
        Provider(api="gemini", endpoint="https://generativelanguage.googleapis.com/"), "k"
    )
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    assert adapter.build(Call(Operation.CHAT, body, stream=False), MODEL).url == (
        f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:generateContent"
    )


async def test_chat(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    completion = await client.chat.completions.create(
        model="chat",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello please"},
        ],
    )

    assert completion.choices[0].message.content == HELLO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 8)
    seen = sim.last_request
    assert seen.path == f"/v1beta/models/{MODEL}:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert seen.body == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello please"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


async def test_stream_with_usage(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=6,
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from gemini-sim! This is a"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 6)
    assert sim.last_request.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert sim.last_request.query == {"alt": "sse"}


async def test_tool_call_round_trip(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)

    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": HELLO}  # type: ignore[union-attr]

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12C, rain"},
    ]
    second = await client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)

    assert second.choices[0].message.content == HELLO
    contents = sim.last_request.body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": HELLO}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "12C, rain"}}}
        ],
    }


async def test_streamed_tool_call(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]

    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "get_weather")]  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_embeddings(client: openai.AsyncOpenAI, sim: GeminiSimulator) -> None:
    result = await client.embeddings.create(model="embed", input=["first text", "second"])

    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.data[0].embedding != result.data[1].embedding
    seen = sim.last_request
    assert seen.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert seen.body["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "second"}]},
    }


async def test_provider_400_is_relayed_in_openai_shape(
    client: openai.AsyncOpenAI, sim: GeminiSimulator
) -> None:
    sim.set_faults([{"kind": "status", "status": 400, "message": "Bad temperature."}])
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body == {
        "message": "Bad temperature.",
        "type": "invalid_request_error",
        "param": None,
        "code": "INVALID_ARGUMENT",
    }


async def test_unexpressible_request_is_a_400_and_never_reaches_the_provider(
    client: openai.AsyncOpenAI, sim: GeminiSimulator
) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": [image]}]
        )
    assert "only data: URLs" in str(info.value)
    assert sim.requests == []


async def test_error_in_the_middle_of_a_stream(
    client: openai.AsyncOpenAI, sim: GeminiSimulator
) -> None:
    sim.set_faults([{"kind": "in_stream_error", "after_chunks": 2}])
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="provider stream failed"):
        await collect(stream, received)
    assert "".join(received) == "Hello from gemini-sim! This"
