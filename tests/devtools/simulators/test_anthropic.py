"""The Anthropic simulator, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import asyncio

import aiohttp
import anthropic
import pytest

from aiguillage.devtools.simulators import AnthropicSimulator

from .conftest import ANTHROPIC_KEY

USER = [{"role": "user", "content": "Say hello"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "weather",
        "input_schema": {"type": "object", "properties": {}},
    },
    {"name": "get_time", "input_schema": {"type": "object"}},
]


def client(sim: AnthropicSimulator, key: str = ANTHROPIC_KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=sim.url, api_key=key, max_retries=0)


async def test_sync_message(anthropic_sim: AnthropicSimulator) -> None:
    def call() -> anthropic.types.Message:
        with anthropic.Anthropic(
            base_url=anthropic_sim.url, api_key=ANTHROPIC_KEY, max_retries=0
        ) as c:
            return c.messages.create(
                model="claude-sonnet",
                max_tokens=256,
                system="Be brief please",
                messages=USER,
            )

    message = await asyncio.to_thread(call)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-sonnet"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from claude-us! This is a simulated answer."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 8)
    request = anthropic_sim.last_request
    assert request.headers["anthropic-version"]
    assert request.body["max_tokens"] == 256


async def test_x_api_key_header(
    anthropic_sim: AnthropicSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        anthropic_sim.url + "/v1/messages",
        json={"model": "c", "max_tokens": 10, "messages": USER},
        headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    ) as resp:
        assert resp.status == 200
        assert resp.headers["request-id"].startswith("req_")
        body = await resp.json()
    assert body["content"][0]["text"].startswith("Hello from claude-us")


async def test_stream_events_in_order(
    anthropic_sim: AnthropicSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        anthropic_sim.url + "/v1/messages",
        json={"model": "c", "max_tokens": 10, "messages": USER, "stream": True},
        headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    ) as resp:
        raw = await resp.text()
    names = [block.split("\n")[0] for block in raw.split("\n\n") if block]
    assert names == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        *["event: content_block_delta"] * 4,
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]


async def test_stream_through_sdk(anthropic_sim: AnthropicSimulator) -> None:
    async with client(anthropic_sim).messages.stream(
        model="claude",
        max_tokens=100,
        messages=USER,
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) == 4
    assert "".join(pieces) == "Hello from claude-us! This is a simulated answer."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8  # cumulative, not summed


async def test_max_tokens_cut(anthropic_sim: AnthropicSimulator) -> None:
    message = await client(anthropic_sim).messages.create(model="c", max_tokens=2, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "Hello from"


async def test_tool_use(anthropic_sim: AnthropicSimulator) -> None:
    c = client(anthropic_sim)
    message = await c.messages.create(model="c", max_tokens=100, messages=USER, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {})

    async with c.messages.stream(
        model="c",
        max_tokens=100,
        messages=USER,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].name == "get_time"
    assert final.content[0].input == {}

    answered = await c.messages.create(
        model="c",
        max_tokens=100,
        tools=TOOLS,
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": block.id, "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ],
    )
    assert answered.stop_reason == "end_turn"


async def test_validation_errors(
    anthropic_sim: AnthropicSimulator, http: aiohttp.ClientSession
) -> None:
    headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    async with http.post(
        anthropic_sim.url + "/v1/messages", json={"model": "c", "messages": USER}, headers=headers
    ) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert body["request_id"].startswith("req_")
    async with http.post(
        anthropic_sim.url + "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": USER},
        headers={"x-api-key": ANTHROPIC_KEY},
    ) as resp:
        assert resp.status == 400
        assert "anthropic-version" in (await resp.json())["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError) as err:
        await client(anthropic_sim, key="bad").messages.create(
            model="c", max_tokens=5, messages=USER
        )
    assert err.value.body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("status", "exc_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
    ],
)
async def test_status_faults_map_to_sdk_exceptions(
    anthropic_sim: AnthropicSimulator, status: int, exc_class: type[Exception], error_type: str
) -> None:
    anthropic_sim.set_faults([{"kind": "status", "status": status, "retry_after": 1}])
    with pytest.raises(exc_class) as err:
        await client(anthropic_sim).messages.create(model="c", max_tokens=5, messages=USER)
    assert isinstance(err.value, anthropic.APIStatusError)
    assert err.value.status_code == status
    assert err.value.body["error"]["type"] == error_type
    assert err.value.response.headers["retry-after"] == "1"
    if status == 429:
        assert "anthropic-ratelimit-requests-reset" in err.value.response.headers


async def test_in_stream_error_raises(anthropic_sim: AnthropicSimulator) -> None:
    anthropic_sim.set_faults([{"kind": "in_stream_error", "after_chunks": 2}])
    received: list[str] = []

    async def consume() -> None:
        async with client(anthropic_sim).messages.stream(
            model="c",
            max_tokens=100,
            messages=USER,
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)

    with pytest.raises(anthropic.APIStatusError) as err:
        await consume()
    assert received == ["Hello from", " claude-us! This"]
    assert err.value.status_code == 200  # the error arrived after the 200
    assert err.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


async def test_count_tokens_and_models(anthropic_sim: AnthropicSimulator) -> None:
    c = client(anthropic_sim)
    count = await c.messages.count_tokens(model="c", messages=USER)
    assert count.input_tokens == 2
    models = await c.models.list()
    assert [m.id for m in models.data] == ["sim-claude"]


async def test_billed_tokens_are_those_of_the_usage_it_answers(
    anthropic_sim: AnthropicSimulator,
) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=anthropic_sim.url, api_key=ANTHROPIC_KEY, max_retries=0
    ) as c:
        message = await c.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "one two"}]
        )
    usage = message.usage
    assert anthropic_sim.billed == {"claude-x": [usage.input_tokens, usage.output_tokens]}
