"""The Anthropic Messages adapter (adapters/anthropic.py), OpenAI clients' side.

Request bodies are checked against the anthropic SDK's own parameter types (tests/sidecar/
_wire.py), answers and streams follow the examples of Anthropic's Messages and streaming
documentation, and the translated answers must parse as the openai SDK's types. Then the
official ``openai`` SDK talks to a real sidecar in front of the Anthropic simulator.
Anthropic clients (the native Messages path) are covered in tests/sidecar/test_messages_api.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import orjson
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.anthropic import (
    AnthropicAdapter,
    ChunkStream,
    EventRelay,
    as_anthropic_error,
    error_to_openai,
    messages_url,
    read_message,
)
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.openai_chat import UnsupportedRequest
from aiguillage.sidecar.config import Provider, SidecarConfig, Target
from aiguillage.sidecar.errors import UpstreamProtocol
from tests.sidecar._wire import anthropic_request, openai_chunks, openai_completion
from tests.sidecar.conftest import (
    ANTHROPIC_KEY,
    CLIENT_KEY,
    EU_KEY,
    RunningSidecar,
    StartSidecar,
    anthropic_provider,
    provider_for,
    route,
)

KEY = ANTHROPIC_KEY
MODEL = "claude-sonnet-4-5"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
HELLO = "Hello from claude-sim! This is a simulated answer."
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
    }
]
REQUEST: dict[str, Any] = {
    "model": "chat",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these? And the weather in Paris and Lyon?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "19C"},
        {"role": "user", "content": "Answer as JSON."},
    ],
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": {"type": "object"}},
    },
    "max_completion_tokens": 256,
    "temperature": 1.4,
    "top_p": 0.9,
    "stop": ["END", "STOP"],
    "seed": 3,
}
# temperature, top_p and seed are dropped (see the adapter's docstring).
EXPECTED_BODY: dict[str, Any] = {
    "max_tokens": 256,
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these? And the weather in Paris and Lyon?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.org/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Lyon"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "21C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "19C"},
                {"type": "text", "text": "Answer as JSON."},
            ],
        },
    ],
    "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ],
    "stop_sequences": ["END", "STOP"],
    "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    "model": MODEL,
}


def adapter(endpoint: str = "https://api.anthropic.com") -> AnthropicAdapter:
    return AnthropicAdapter(Provider(api="anthropic", endpoint=endpoint, credential="ant"), KEY)


def build(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    req = adapter().build(Call(Operation.CHAT, body, stream), MODEL)
    return orjson.loads(req.body)  # type: ignore[no-any-return]


def chat(*messages: Any, **fields: Any) -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": list(messages) or [{"role": "user", "content": "hi"}],
        **fields,
    }


# -- request ---------------------------------------------------------------------------------


def test_request_matches_the_anthropic_sdk_types() -> None:
    req = adapter().build(Call(Operation.CHAT, REQUEST, stream=False), MODEL)
    body = orjson.loads(req.body)

    assert body == EXPECTED_BODY
    assert anthropic_request(body) == body  # every field is one the SDK knows, well typed
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": KEY,
    }


@pytest.mark.parametrize(
    "endpoint",
    ["https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1"],
)
def test_endpoint_is_the_sdk_base_url_with_or_without_v1(endpoint: str) -> None:
    assert messages_url(endpoint) == "https://api.anthropic.com/v1/messages"


def test_defaults_max_tokens_single_system_and_stream() -> None:
    body = build(
        chat({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}), True
    )

    assert body == {
        "max_tokens": 4096,  # required by Anthropic
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "system": "Be brief.",
        "stream": True,
        "model": MODEL,
    }
    assert anthropic_request(body) == {k: v for k, v in body.items() if k != "stream"}


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, None),
        ("auto", None),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice(tool_choice: Any, expected: Any) -> None:
    fields: dict[str, Any] = {"tools": TOOLS}
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    body = build(chat(**fields))
    assert body.get("tool_choice") == expected
    assert anthropic_request(body) == body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 2}, '"n"'),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}}
                        ],
                    }
                ]
            },
            "audio/wav",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/tiff;base64,{PNG}"},
                            }
                        ],
                    }
                ]
            },
            "image/tiff",
        ),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_what_messages_cannot_express_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedRequest, match=message) as info:
        build({**REQUEST, **change})
    assert orjson.loads(info.value.body)["error"]["code"] == "unsupported_by_provider"


def test_messages_operation_passes_the_body_through_with_the_providers_model() -> None:
    body = {
        "model": "chat",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
    }
    req = adapter("https://api.anthropic.com/").build(
        Call(Operation.MESSAGES, dict(body), True), MODEL
    )

    assert orjson.loads(req.body) == {**body, "model": MODEL}
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY


# -- answers ---------------------------------------------------------------------------------

TOOL_ANSWER = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig"},
        {"type": "text", "text": "I'll check the current weather in San Francisco."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 89,
    },
}


def test_tool_use_answer_becomes_a_completion_with_tool_calls_and_all_prompt_tokens() -> None:
    body, usage = read_message(orjson.dumps(TOOL_ANSWER), "chat")
    completion = openai_completion(body)
    choice = completion.choices[0]

    assert completion.model == "claude-sonnet-4-5-20250929"
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the current weather in San Francisco."
    assert [c.model_dump() for c in choice.message.tool_calls or ()] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
            },
        }
    ]
    # Cached prompt tokens are prompt tokens (OpenAI's meaning), reported as cached.
    assert orjson.loads(body)["usage"] == {
        "prompt_tokens": 2572,
        "completion_tokens": 89,
        "total_tokens": 2661,
        "prompt_tokens_details": {"cached_tokens": 2000},
    }
    assert (usage.input_tokens, usage.output_tokens) == (2572, 89)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    answer = {**TOOL_ANSWER, "content": [{"type": "text", "text": "x"}], "stop_reason": stop}
    assert (
        openai_completion(read_message(orjson.dumps(answer), "m")[0]).choices[0].finish_reason
        == finish
    )


def test_native_answer_is_relayed_as_is_with_its_usage() -> None:
    raw = orjson.dumps(TOOL_ANSWER)
    body, usage = adapter().read_response(Call(Operation.MESSAGES, {}, False), raw, MODEL)
    assert body is raw
    assert (usage.input_tokens, usage.output_tokens) == (2572, 89)


@pytest.mark.parametrize("operation", [Operation.CHAT, Operation.MESSAGES])
def test_an_error_body_with_status_200_is_a_protocol_error(operation: Operation) -> None:
    raw = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(UpstreamProtocol):
        adapter().read_response(Call(operation, {}, False), raw, MODEL)


# -- streams ---------------------------------------------------------------------------------


def events(*items: tuple[str, dict[str, Any]]) -> list[tuple[str, bytes]]:
    return [(name, orjson.dumps(payload)) for name, payload in items]


START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1000,
                "output_tokens": 2,
            },
        },
    },
)
TOOL_STREAM = events(
    START,
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Okay,"},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " checking."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "San Fra'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ncisco"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    # Running totals: a second message_delta replaces the first, it does not add to it.
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": None, "stop_sequence": None},
            "usage": {"output_tokens": 40},
        },
    ),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def test_stream_translation_with_tool_use_and_cumulative_usage() -> None:
    translator = ChunkStream("chat", client_wants_usage=True)
    out = b"".join(chunk for name, data in TOOL_STREAM for chunk in translator.feed(name, data))
    chunks = openai_chunks(out)
    deltas = [c.choices[0].delta for c in chunks if c.choices]

    assert translator.done
    assert {c.model for c in chunks} == {"claude-sonnet-4-5-20250929"}
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Okay, checking."
    calls = [tc for d in deltas for tc in d.tool_calls or ()]
    functions = [tc.function for tc in calls if tc.function]
    assert (calls[0].index, calls[0].id, functions[0].name) == (0, "toolu_01T1x", "get_weather")
    assert "".join(f.arguments or "" for f in functions) == '{"city": "San Francisco"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == {
        "prompt_tokens": 1472,
        "completion_tokens": 89,
        "total_tokens": 1561,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    assert (translator.usage.input_tokens, translator.usage.output_tokens) == (1472, 89)


def test_nothing_is_written_before_content_and_no_usage_chunk_unless_asked() -> None:
    translator = ChunkStream("chat", client_wants_usage=False)
    assert list(translator.feed(*TOOL_STREAM[0])) == []
    assert list(translator.feed(*TOOL_STREAM[1])) == []
    out = b"".join(chunk for name, data in TOOL_STREAM[2:] for chunk in translator.feed(name, data))
    assert all(c.choices for c in openai_chunks(out))


def test_a_stream_cut_before_message_stop_is_not_done() -> None:
    translator = ChunkStream("chat", client_wants_usage=True)
    out = b"".join(
        chunk for name, data in TOOL_STREAM[:-1] for chunk in translator.feed(name, data)
    )
    assert not translator.done
    assert b"[DONE]" not in out


@pytest.mark.parametrize("translator", [ChunkStream("chat", False), EventRelay()])
def test_an_error_event_after_the_200_raises(translator: Any) -> None:
    list(translator.feed(*TOOL_STREAM[0]))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamProtocol, match="overloaded_error"):
        list(translator.feed("error", orjson.dumps(error)))


@pytest.mark.parametrize("translator", [ChunkStream("chat", False), EventRelay()])
def test_a_garbled_event_raises(translator: Any) -> None:
    with pytest.raises(UpstreamProtocol):
        list(
            translator.feed(
                "content_block_delta", b'{"type":"content_block_delta","index":0,"delta":{"ty'
            )
        )


def test_relay_holds_events_back_until_content_then_relays_them_verbatim() -> None:
    relay = EventRelay()
    held = [list(relay.feed(name, data)) for name, data in TOOL_STREAM[:3]]
    first = list(relay.feed(*TOOL_STREAM[3]))
    rest = [chunk for name, data in TOOL_STREAM[4:] for chunk in relay.feed(name, data)]

    assert held == [[], [], []]  # message_start, content_block_start, ping: failover still possible
    expected = [
        b"event: " + name.encode() + b"\ndata: " + data + b"\n\n" for name, data in TOOL_STREAM
    ]
    assert first + rest == expected
    assert relay.done
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (1472, 89)


def test_relay_lets_an_answer_without_content_go_at_its_end() -> None:
    relay = EventRelay()
    stream = events(
        START,
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    out = [chunk for name, data in stream for chunk in relay.feed(name, data)]
    assert len(out) == 3
    assert relay.done


def test_relay_keeps_the_sse_framing_of_multi_line_data() -> None:
    relay = EventRelay()
    list(relay.feed(*TOOL_STREAM[0]))
    out = list(
        relay.feed(
            "content_block_delta",
            b'{"type":"content_block_delta","index":0,\n"delta":{"type":"text_delta","text":"x"}}',
        )
    )
    assert out[-1] == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n'
        b'data: "delta":{"type":"text_delta","text":"x"}}\n\n'
    )


# -- errors ----------------------------------------------------------------------------------


def test_anthropic_error_becomes_an_openai_error() -> None:
    body = error_to_openai(
        529,
        b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}',
    )
    assert orjson.loads(body)["error"] == {
        "message": "Overloaded",
        "type": "api_error",
        "param": None,
        "code": "overloaded_error",
    }
    assert orjson.loads(error_to_openai(502, b"<html>bad gateway</html>"))["error"]["message"] == (
        "<html>bad gateway</html>"
    )


def test_native_errors_stay_anthropic_or_become_anthropic() -> None:
    anthropic_body = (
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"max_tokens: Field required"}}'
    )
    assert as_anthropic_error(400, anthropic_body) is anthropic_body
    assert orjson.loads(as_anthropic_error(403, b"Forbidden by proxy")) == {
        "type": "error",
        "error": {"type": "permission_error", "message": "Forbidden by proxy"},
    }
    call = Call(Operation.MESSAGES, {}, False)
    assert adapter().error_body(call, 400, anthropic_body) is anthropic_body


# -- through a real sidecar, with the openai SDK ---------------------------------------------


@pytest.fixture
def sidecar(
    start_sidecar: StartSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> RunningSidecar:
    providers = {
        "anthropic-us": anthropic_provider(claude),
        "mistral-eu": provider_for(eu, location="FR", jurisdiction="FR", credential="mistral-eu"),
    }
    routes = [
        route("chat", Target(provider="anthropic-us", model=MODEL)),
        route(
            "resilient",
            Target(provider="anthropic-us", model=MODEL, priority=0),
            Target(provider="mistral-eu", model="mistral-small-latest", priority=1),
        ),
    ]
    config = SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )
    return start_sidecar(config, {"anthropic-us": KEY, "mistral-eu": EU_KEY})


def test_sync_chat_reaches_anthropic_in_its_wire_format(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
        ],
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == HELLO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 8)
    seen = claude.last_request
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert CLIENT_KEY not in str(seen.headers)
    assert seen.body == {
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
        "system": "Be brief.",
        "model": MODEL,
    }
    assert raw.headers["x-aiguillage-provider"] == "anthropic-us"
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert (record["operation"], record["usage"]) == (
        "chat.completions",
        {"inputTokens": 4, "outputTokens": 8},
    )


async def test_async_stream_with_usage(sidecar: RunningSidecar) -> None:
    stream = await sidecar.async_client().chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from claude-sim! This is"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1, 5)


def test_tool_call_round_trip(sidecar: RunningSidecar, claude: AnthropicSimulator) -> None:
    client = sidecar.client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert claude.last_request.body["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER}
    ]

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12C"},
    ]
    second = client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)

    assert second.choices[0].message.content == HELLO
    assert claude.last_request.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": HELLO}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12C"}],
        },
    ]


async def test_streamed_tool_call(sidecar: RunningSidecar) -> None:
    stream = await sidecar.async_client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]

    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert (calls[0].id or "").startswith("toolu_")
    arguments = "".join(tc.function.arguments or "" for tc in calls)  # type: ignore[union-attr]
    assert json.loads(arguments) == {"city": HELLO}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_invalid_request_is_relayed_in_openai_shape(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults(
        [{"kind": "status", "status": 400, "message": "messages: roles must alternate"}]
    )
    with pytest.raises(openai.BadRequestError) as info:
        sidecar.client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body == {
        "message": "messages: roles must alternate",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }


def test_overloaded_529_fails_over(sidecar: RunningSidecar, claude: AnthropicSimulator) -> None:
    claude.set_faults([{"kind": "status", "status": 529}])
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "x"}]
    )

    assert (
        raw.parse().choices[0].message.content
        == "Hello from mistral-eu! This is a simulated answer."
    )
    assert raw.headers["x-aiguillage-attempts"] == "2"
    attempts = sidecar.audit_for(raw.headers["x-request-id"])["attempts"]
    assert [(a["provider"], a["outcome"], a.get("status")) for a in attempts] == [
        ("anthropic-us", "http_error", 529),
        ("mistral-eu", "ok", None),
    ]


def test_in_stream_error_after_first_bytes_ends_the_stream_with_an_error(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults([{"kind": "in_stream_error", "after_chunks": 2}])
    stream = sidecar.client().chat.completions.create(
        model="resilient", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []

    def read() -> None:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)

    with pytest.raises(openai.APIError, match="overloaded_error"):
        read()
    assert "".join(received) == "Hello from claude-sim! This"
