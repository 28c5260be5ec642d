"""Reading the client's OpenAI chat request and writing its answer (adapters/openai_chat.py)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest

from aiguillage.sidecar.adapters.base import Usage
from aiguillage.sidecar.adapters.openai_chat import (
    ChunkWriter,
    Media,
    RemoteImage,
    Text,
    ToolCall,
    ToolResult,
    UnsupportedRequest,
    embeddings_body,
    parse_chat,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": list(messages), **fields}


def test_turns_merge_by_role_and_tool_results_are_user_turns() -> None:
    req = parse_chat(
        chat(
            {"role": "developer", "content": "Be terse."},
            {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Lyon"}'},
                        "extra_content": {"google": {"thought_signature": "sig=="}},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "time", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "21C"},
            {
                "role": "tool",
                "tool_call_id": "call_b",
                "content": [{"type": "text", "text": "noon"}],
            },
            {"role": "user", "content": "Thanks"},
        ),
        "test",
    )

    assert req.system == ["Be terse.", "Answer in French."]
    assert [t.role for t in req.turns] == ["user", "assistant", "user"]
    assert req.turns[1].parts == [
        Text("Let me check."),
        ToolCall("call_a", "weather", {"city": "Lyon"}, "sig=="),
        ToolCall("call_b", "time", {}),
    ]
    assert req.turns[2].parts == [
        ToolResult("call_a", "weather", "21C"),
        ToolResult("call_b", "time", "noon"),
        Text("Thanks"),
    ]
    assert req.has_tool_history


def test_data_url_images_are_kept_as_base64() -> None:
    req = parse_chat(
        chat(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/PNG;base64,{PNG}"}},
                ],
            }
        ),
        "test",
    )
    assert req.turns[0].parts == [Text("What is this?"), Media("image", "image/png", PNG)]


def test_remote_images_only_for_providers_that_fetch_them() -> None:
    def image(url: str) -> dict[str, Any]:
        return chat({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]})

    req = parse_chat(image("https://example.com/a.png"), "anthropic", remote_images=True)
    assert req.turns[0].parts == [RemoteImage("https://example.com/a.png")]
    with pytest.raises(UnsupportedRequest, match="only data: URLs"):
        parse_chat(image("file:///etc/passwd"), "anthropic", remote_images=True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            chat(
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                }
            ),
            "only data: URLs",
        ),
        (
            chat(
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}
                    ],
                }
            ),
            "not valid base64",
        ),
        (chat({"role": "tool", "tool_call_id": "nope", "content": "x"}), "tool_call_id"),
        (chat({"role": "user", "content": "hi"}, logprobs=True), '"logprobs"'),
        (chat({"role": "user", "content": "hi"}, functions=[{"name": "f"}]), '"functions"'),
        (chat({"role": "user", "content": "hi"}, modalities=["text", "audio"]), "text output"),
        (
            chat(
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
            ),
            "must be a JSON object",
        ),
        ({"model": "chat", "messages": []}, '"messages"'),
    ],
)
def test_requests_a_provider_cannot_express_are_client_errors(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        parse_chat(body, "test")

    err = info.value
    assert message in str(err)
    # Relayed by forward() as the client's 400, never failed over nor retried.
    assert (err.status, err.failover, err.retryable) == (400, False, False)
    assert orjson.loads(err.body)["error"]["type"] == "invalid_request_error"


def test_sampling_fields_and_formats() -> None:
    req = parse_chat(
        chat(
            {"role": "user", "content": "hi"},
            max_completion_tokens=50,
            max_tokens=99,
            stop="END",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}},
            },
            tool_choice={"type": "function", "function": {"name": "f"}},
        ),
        "test",
    )
    assert req.max_tokens == 50
    assert req.stop == ["END"]
    assert (req.response_format.kind, req.response_format.name) == ("json_schema", "answer")
    assert (req.tool_choice.mode, req.tool_choice.name) == ("function", "f")  # type: ignore[union-attr]


def test_embeddings_in_base64_decode_like_the_openai_sdk() -> None:
    vectors = [[0.5, -0.25, 1.0]]
    floats = orjson.loads(embeddings_body({}, "m", vectors, Usage(3, 0)))
    packed = orjson.loads(embeddings_body({"encoding_format": "base64"}, "m", vectors, Usage()))

    assert floats["data"][0]["embedding"] == [0.5, -0.25, 1.0]
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert list(struct.unpack("<3f", raw)) == [0.5, -0.25, 1.0]


def test_chunk_writer_sends_the_role_once_per_choice() -> None:
    writer = ChunkWriter("m")
    first = orjson.loads(writer.delta(content="a")[6:])
    second = orjson.loads(writer.delta(content="b")[6:])
    other = orjson.loads(writer.delta(1, content="c")[6:])

    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "a"}
    assert second["choices"][0]["delta"] == {"content": "b"}
    assert other["choices"][0]["delta"] == {"role": "assistant", "content": "c"}
    assert first["id"] == second["id"]
    assert first["object"] == "chat.completion.chunk"
