"""The OpenAI simulator, driven by the official ``openai`` SDK (sync and async)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from aiguillage.devtools.simulators import OpenAISimulator

from .conftest import OPENAI_KEY

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def client(sim: OpenAISimulator, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.url + "/v1", api_key=OPENAI_KEY, max_retries=0, **kwargs)


async def test_sync_client_chat(openai_sim: OpenAISimulator) -> None:
    def call() -> openai.types.chat.ChatCompletion:
        with openai.OpenAI(base_url=openai_sim.url + "/v1", api_key=OPENAI_KEY, max_retries=0) as c:
            return c.chat.completions.create(
                model="mistral-small-latest",
                messages=[
                    {"role": "system", "content": "Be brief"},
                    {"role": "user", "content": "Say hello to me"},
                ],
            )

    completion = await asyncio.to_thread(call)
    assert completion.object == "chat.completion"
    assert completion.model == "mistral-small-latest"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from mistral-eu! This is a simulated answer."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 6  # words of the text fields
    assert completion.usage.completion_tokens == 8
    assert completion.usage.total_tokens == 14
    # the request log saw the auth header and the body
    request = openai_sim.last_request
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.body["model"] == "mistral-small-latest"


async def test_async_client_is_deterministic(openai_sim: OpenAISimulator) -> None:
    c = client(openai_sim)
    answers = [
        await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        for _ in range(2)
    ]
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content
    assert answers[0].usage == answers[1].usage
    assert answers[0].id != answers[1].id


async def test_stream_with_usage(openai_sim: OpenAISimulator) -> None:
    stream = await client(openai_sim).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from mistral-eu! This is a simulated answer."
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == openai_sim.chunks == 4
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 8)
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_chunk(
    openai_sim: OpenAISimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        openai_sim.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {OPENAI_KEY}"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        body = await resp.text()
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert '"usage"' not in body


async def test_many_chunks_and_max_tokens(openai_sim: OpenAISimulator) -> None:
    openai_sim.configure(chunks=64)
    c = client(openai_sim)
    stream = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    deltas = [ch.choices[0].delta.content async for ch in stream if ch.choices[0].delta.content]
    assert len(deltas) == 64
    assert "".join(deltas).startswith("Hello from mistral-eu!")
    cut = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=3
    )
    assert cut.choices[0].message.content == "Hello from mistral-eu!"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 3


async def test_tool_call(openai_sim: OpenAISimulator) -> None:
    c = client(openai_sim)
    completion = await c.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "city": "Hello from mistral-eu! This is a simulated answer."
    }

    forced = await c.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "time?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert forced.choices[0].message.tool_calls is not None
    assert forced.choices[0].message.tool_calls[0].function.name == "get_time"

    after_result = await c.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert after_result.choices[0].finish_reason == "stop"
    assert after_result.choices[0].message.content

    none = await c.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None


async def test_streamed_tool_call_through_sdk_helper(openai_sim: OpenAISimulator) -> None:
    async with client(openai_sim).chat.completions.stream(
        model="m",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {
        "city": "Hello from mistral-eu! This is a simulated answer."
    }


async def test_embeddings_float_and_base64(openai_sim: OpenAISimulator) -> None:
    c = client(openai_sim)
    # the SDK asks for base64 by default and decodes it
    default = await c.embeddings.create(model="mistral-embed", input=["hello world", "bye"])
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in default.data)
    assert openai_sim.last_request.body["encoding_format"] == "base64"
    floats = await c.embeddings.create(
        model="mistral-embed", input=["hello world", "bye"], encoding_format="float"
    )
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 3
    wide = await c.embeddings.create(model="e", input="x", dimensions=32, encoding_format="float")
    assert len(wide.data[0].embedding) == 32
    with pytest.raises(openai.BadRequestError):
        await c.embeddings.create(model="e", input=[])


async def test_responses_api(openai_sim: OpenAISimulator) -> None:
    c = client(openai_sim)
    response = await c.responses.create(model="m", input="hello there", instructions="be nice")
    assert response.status == "completed"
    assert response.output_text == "Hello from mistral-eu! This is a simulated answer."
    assert response.usage is not None
    assert response.usage.input_tokens == 4
    async with c.responses.stream(model="m", input="hi") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert final.output_text == response.output_text
    tool = await c.responses.create(
        model="m",
        input="weather?",
        tools=[{"type": "function", "name": "get_weather", "parameters": {}}],
    )
    assert tool.output[0].type == "function_call"
    assert tool.output[0].name == "get_weather"


async def test_legacy_completions_and_models(openai_sim: OpenAISimulator) -> None:
    c = client(openai_sim)
    completion = await c.completions.create(model="m", prompt="Say hi")
    assert completion.object == "text_completion"
    assert completion.choices[0].text.startswith("Hello from mistral-eu")
    stream = await c.completions.create(model="m", prompt="Say hi", stream=True)
    text = "".join([chunk.choices[0].text async for chunk in stream])
    assert text == completion.choices[0].text
    models = await c.models.list()
    assert [m.id for m in models.data] == ["sim-chat", "sim-embedding"]


async def test_models_restriction_and_bad_requests() -> None:
    async with OpenAISimulator("vllm", models=["llama"]) as sim:
        c = client(sim)
        with pytest.raises(openai.NotFoundError) as err:
            await c.chat.completions.create(
                model="gpt-x", messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            await c.chat.completions.create(model="llama", messages=[])
        assert bad.value.type == "invalid_request_error"
        assert (await c.models.retrieve("llama")).id == "llama"


async def test_auth(openai_sim: OpenAISimulator, http: aiohttp.ClientSession) -> None:
    wrong = openai.AsyncOpenAI(
        base_url=openai_sim.url + "/v1", api_key="sk-wrong-key-value", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as err:
        await wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "invalid_api_key"
    assert err.value.type == "invalid_request_error"
    async with http.post(openai_sim.url + "/v1/chat/completions", json={}) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "didn't provide an API key" in body["error"]["message"]


async def test_base_path_and_unknown_route(http: aiohttp.ClientSession) -> None:
    async with OpenAISimulator("scaleway", base_path="/proj-123/v1") as sim:
        c = openai.AsyncOpenAI(base_url=sim.url + "/proj-123/v1", api_key="x", max_retries=0)
        answer = await c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content is not None
        assert "Hello from scaleway" in answer.choices[0].message.content
        async with http.get(sim.url + "/v2/whatever") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["message"] == "Invalid URL (GET /v2/whatever)"
        async with http.post(
            sim.url + "/proj-123/v1/chat/completions",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_billed_tokens_are_those_of_the_usage_it_answers(openai_sim: OpenAISimulator) -> None:
    async with client(openai_sim) as c:
        whole = await c.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "one two three"}], max_tokens=3
        )
        stream = await c.chat.completions.create(
            model="m2",
            messages=[{"role": "user", "content": "four five"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        [usage] = [chunk.usage async for chunk in stream if chunk.usage is not None]
    assert whole.usage is not None
    assert openai_sim.billed == {
        "m1": [whole.usage.prompt_tokens, whole.usage.completion_tokens],
        "m2": [usage.prompt_tokens, usage.completion_tokens],
    }
