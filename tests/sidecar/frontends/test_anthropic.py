"""The Anthropic Messages frontend's translations (frontends/anthropic.py).

Anthropic requests become chat.completions bodies the openai SDK's own parameter types
accept; OpenAI answers and chunks become messages and named events the anthropic SDK's
types accept, and that its ``messages.stream()`` accumulator turns into the right message.
"""

from __future__ import annotations

import base64
from typing import Any

import anthropic.types
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from aiguillage.sidecar.adapters.base import Call, Operation, Usage
from aiguillage.sidecar.adapters.openai import OpenAIStream
from aiguillage.sidecar.adapters.openai_chat import Choice as OpenAIChoice
from aiguillage.sidecar.adapters.openai_chat import ChunkWriter, UnsupportedRequest, completion
from aiguillage.sidecar.errors import UpstreamProtocol
from aiguillage.sidecar.frontends.anthropic import (
    ANTHROPIC,
    MessageEvents,
    chat_body,
    message_body,
)
from tests.sidecar._wire import anthropic_events, anthropic_message, openai_chat_request

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
REQUEST: dict[str, Any] = {
    "model": "chat",
    "max_tokens": 512,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in French."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these? Weather in Paris and Lyon?"},
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
                {"type": "thinking", "thinking": "Two cities.", "signature": "c2ln"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Lyon"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "19C"}],
                    "is_error": False,
                },
                {"type": "text", "text": "Answer as JSON."},
            ],
        },
    ],
    "tools": [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
        {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}},
    ],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.3,
    "top_k": 40,
    "metadata": {"user_id": "u-1"},
    "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    "stream": True,
}
EXPECTED: dict[str, Any] = {
    "model": "chat",
    "messages": [
        {"role": "system", "content": "You are terse.\n\nAnswer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these? Weather in Paris and Lyon?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "21C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "19C"},
        {"role": "user", "content": "Answer as JSON."},
    ],
    "max_tokens": 512,
    "temperature": 0.3,
    "stop": ["END"],
    "tools": [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER},
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}},
    },
    "stream": True,
    "stream_options": {"include_usage": True},
}


def request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "chat",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


# -- request ---------------------------------------------------------------------------------


def test_request_becomes_a_chat_body_the_openai_sdk_accepts() -> None:
    body = chat_body(REQUEST)

    assert body == EXPECTED
    assert openai_chat_request(body) == {
        k: v for k, v in body.items() if k not in ("stream", "stream_options")
    }


def test_the_canonical_call_always_asks_for_usage() -> None:
    call = ANTHROPIC.to_canonical(Call(Operation.MESSAGES, request(stream=True), stream=True))
    assert (call.operation, call.stream, call.client_wants_usage) == (Operation.CHAT, True, True)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {}),
        ({"type": "any"}, {"tool_choice": "required"}),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "f"},
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = chat_body(request(tools=tools, tool_choice=choice))
    assert {
        k: v for k, v in body.items() if k in ("tool_choice", "parallel_tool_calls")
    } == expected
    assert openai_chat_request(body) == body


def test_disabled_thinking_and_plain_strings_pass() -> None:
    body = chat_body(
        request(
            system="Be brief.",
            thinking={"type": "disabled"},
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "bye"},
            ],
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "bye"},
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, '"thinking"'),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
        (
            {"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]},
            "mcp_servers",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                            }
                        ],
                    }
                ]
            },
            '"document"',
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {
                                        "type": "image",
                                        "source": {
                                            "type": "base64",
                                            "media_type": "image/png",
                                            "data": PNG,
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ]
            },
            r'content\[0\]\.content\[0\]: blocks of type "image"',
        ),
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"output_config": {"format": {"type": "regex", "pattern": "x"}}}, "json_schema"),
    ],
)
def test_what_chat_completions_cannot_express_is_refused(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedRequest, match=message):
        chat_body(request(**fields))


def test_refusals_reach_the_client_as_anthropic_errors() -> None:
    with pytest.raises(UnsupportedRequest) as info:
        chat_body(request(thinking={"type": "enabled", "budget_tokens": 1024}))
    body = orjson.loads(ANTHROPIC.error_body(400, info.value.body))
    assert body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": '"thinking" is not supported when the route\'s target does not speak '
            "the Anthropic API",
        },
    }


# -- answer ----------------------------------------------------------------------------------


def openai_answer(
    text: str | None, calls: list[dict[str, Any]], finish: str | None, **usage: Any
) -> bytes:
    body = orjson.loads(
        completion(
            "chatcmpl-1",
            "gpt-4o-mini-2024-07-18",
            [OpenAIChoice(0, text, calls, finish)],
            Usage(30, 12),
        )
    )
    body["usage"].update(usage)
    return orjson.dumps(body)


def test_answer_with_tool_calls_and_cached_tokens() -> None:
    calls = [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    raw = openai_answer(
        "Let me check.", calls, "tool_calls", prompt_tokens_details={"cached_tokens": 20}
    )
    message = anthropic_message(message_body(raw))
    out = orjson.loads(message_body(raw))

    assert out["id"].startswith("msg_")
    assert {k: v for k, v in out.items() if k != "id"} == {
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-mini-2024-07-18",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        # OpenAI's prompt tokens include the cached ones; Anthropic's input tokens do not.
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 20,
            "output_tokens": 12,
        },
    }
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, stop: str) -> None:
    raw = openai_answer("x", [], finish)
    assert anthropic_message(message_body(raw)).stop_reason == stop


def test_an_openai_refusal_is_a_refusal() -> None:
    body = orjson.loads(openai_answer(None, [], "stop"))
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    message = anthropic_message(message_body(orjson.dumps(body)))
    assert (message.stop_reason, message.content[0].text) == ("refusal", "I can't help with that.")  # type: ignore[union-attr]


def test_tool_arguments_that_are_not_an_object_are_a_protocol_error() -> None:
    calls = [
        {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    ]
    with pytest.raises(UpstreamProtocol, match="not a JSON object"):
        message_body(openai_answer(None, calls, "tool_calls"))


# -- streams ---------------------------------------------------------------------------------


def openai_stream(*deltas: dict[str, Any], finish: str = "stop") -> list[bytes]:
    """An OpenAI chat stream as a provider sends it (role chunk first, usage, [DONE])."""
    writer = ChunkWriter("gpt-4o-mini-2024-07-18")
    chunks = [writer.delta(content="")]
    chunks += [writer.delta(**d) for d in deltas]
    chunks.append(writer.delta(finish_reason=finish))
    usage_chunk = orjson.loads(writer.usage(Usage(30, 12))[6:])
    usage_chunk["usage"]["prompt_tokens_details"] = {"cached_tokens": 8}
    chunks.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
    return [*chunks, b"data: [DONE]\n\n"]


def translate(chunks: list[bytes]) -> tuple[MessageEvents, list[list[bytes]]]:
    """Feed the chunks (as SSE data) through OpenAIStream wrapped in MessageEvents."""
    events = MessageEvents(OpenAIStream(client_wants_usage=True), "chat")
    return events, [list(events.feed(None, c[6:].rstrip(b"\n"))) for c in chunks]


def accumulate(raw: bytes) -> anthropic.types.Message:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in anthropic_events(raw):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    return snapshot


def test_text_stream_becomes_anthropic_events_that_the_sdk_accumulates() -> None:
    translator, out = translate(openai_stream({"content": "Hello"}, {"content": " there."}))
    events = anthropic_events(b"".join(b"".join(o) for o in out))

    assert out[0] == []  # the role chunk carries no content: nothing written yet
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert translator.done
    message = accumulate(b"".join(b"".join(o) for o in out))
    assert message.content[0].text == "Hello there."  # type: ignore[union-attr]
    assert message.model == "gpt-4o-mini-2024-07-18"
    assert message.stop_reason == "end_turn"
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (
        22,
        8,
        12,
    )
    assert (translator.usage.input_tokens, translator.usage.output_tokens) == (30, 12)


def test_tool_call_stream_becomes_tool_use_blocks() -> None:
    def call(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": arguments}
        out: dict[str, Any] = {"index": index, "function": function}
        if name:
            out["id"], out["type"], function["name"] = f"call_{index}", "function", name
        return out

    chunks = openai_stream(
        {"content": "Checking both."},
        {"tool_calls": [call(0, "", "get_weather")]},
        {"tool_calls": [call(0, '{"city":')]},
        {"tool_calls": [call(0, '"Paris"}')]},
        {"tool_calls": [call(1, '{"city":"Lyon"}', "get_weather")]},
        finish="tool_calls",
    )
    _, out = translate(chunks)
    message = accumulate(b"".join(b"".join(o) for o in out))

    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert [(b.id, b.name, b.input) for b in message.content[1:]] == [  # type: ignore[union-attr]
        ("call_0", "get_weather", {"city": "Paris"}),
        ("call_1", "get_weather", {"city": "Lyon"}),
    ]
    assert message.stop_reason == "tool_use"


def test_an_empty_answer_still_starts_and_ends_the_message() -> None:
    translator, out = translate(openai_stream(finish="length"))
    message = accumulate(b"".join(b"".join(o) for o in out))
    assert (message.content, message.stop_reason) == ([], "max_tokens")
    assert translator.done


def test_interleaved_tool_arguments_are_a_protocol_error() -> None:
    first = {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{"}}
    second = {
        "index": 1,
        "id": "b",
        "type": "function",
        "function": {"name": "g", "arguments": "{"},
    }
    again = {"index": 0, "function": {"arguments": "}"}}
    chunks = openai_stream(
        {"tool_calls": [first]}, {"tool_calls": [second]}, {"tool_calls": [again]}
    )
    with pytest.raises(UpstreamProtocol, match="interleaved"):
        translate(chunks)


def test_a_stream_cut_before_done_is_not_done() -> None:
    translator, out = translate(openai_stream({"content": "Hel"})[:-1])
    assert not translator.done
    assert b"message_stop" not in b"".join(b"".join(o) for o in out)


# -- the sidecar's own errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (502, "api_error"),
        (503, "api_error"),
    ],
)
def test_sidecar_errors_have_the_anthropic_shape(status: int, kind: str) -> None:
    response = ANTHROPIC.error(
        status, "why", "aiguillage_error", "some_code", {"x-request-id": "r1"}
    )
    assert response.status == status
    assert response.headers["x-request-id"] == "r1"
    # Exactly Anthropic's shape (strict parsers refuse unknown fields): the code is a header.
    assert orjson.loads(response.body) == {  # type: ignore[arg-type]
        "type": "error",
        "error": {"type": kind, "message": "why"},
    }
    assert response.headers["x-aiguillage-error-code"] == "some_code"


def test_stream_error_is_an_anthropic_error_event() -> None:
    event = ANTHROPIC.stream_error("provider stream failed: cut", "protocol_error", None)
    assert event == (
        b"event: error\ndata: "
        + orjson.dumps(
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "provider stream failed: cut (protocol_error)",
                },
            }
        )
        + b"\n\n"
    )


def test_openai_error_bodies_become_anthropic_errors() -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    )
    assert orjson.loads(ANTHROPIC.error_body(429, body)) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached"},
    }
