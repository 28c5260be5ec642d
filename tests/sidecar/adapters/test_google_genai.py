"""Google's generateContent format both ways (adapters/google_genai.py), without a network.

Expected provider JSON follows the Gemini API and Vertex AI references (``Content``,
``Part``, ``FunctionDeclaration.parametersJsonSchema``, ``GenerationConfig``,
``GenerateContentResponse`` with ``usageMetadata``, ``FinishReason``); sample answers are
shaped like the documented ones.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.gemini import GeminiAdapter
from aiguillage.sidecar.adapters.google_genai import (
    GenerateContentStream,
    error_to_openai,
    read_generate_response,
)
from aiguillage.sidecar.adapters.openai_chat import END_OF_STREAM
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import UpstreamProtocol

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
REQUEST: dict[str, Any] = {
    "model": "chat",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture? And the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra_content": {"google": {"thought_signature": "c2lnbmF0dXJl"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "Answer in JSON."},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": WEATHER,
            },
        }
    ],
    "tool_choice": "required",
    "response_format": {"type": "json_object"},
    "max_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "seed": 7,
}


def adapter() -> GeminiAdapter:
    return GeminiAdapter(
        Provider(api="gemini", endpoint="https://generativelanguage.googleapis.com/v1beta"),
        "gkey",
    )


def test_chat_request_becomes_the_documented_generate_content_request() -> None:
    req = adapter().build(Call(Operation.CHAT, REQUEST, stream=False), "gemini-2.5-flash")

    assert req.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert req.headers == {"content-type": "application/json", "x-goog-api-key": "gkey"}
    assert orjson.loads(req.body) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this picture? And the weather in Paris?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnbmF0dXJl",
                    }
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                    {"text": "Answer in JSON."},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather of a city",
                        "parametersJsonSchema": WEATHER,
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {
            "maxOutputTokens": 256,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
            "seed": 7,
            "responseMimeType": "application/json",
        },
    }


def test_stream_url_asks_for_sse_and_json_schema_and_named_tool_choice() -> None:
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": REQUEST["tools"],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": WEATHER, "strict": True},
        },
        "n": 2,
    }
    req = adapter().build(Call(Operation.CHAT, body, stream=True), "models/gemini-2.5-flash")
    sent = orjson.loads(req.body)

    assert req.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert sent["generationConfig"] == {
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseJsonSchema": WEATHER,
    }


USAGE = {
    "promptTokenCount": 11,
    "candidatesTokenCount": 7,
    "thoughtsTokenCount": 5,
    "totalTokenCount": 23,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}],
}


def answer(parts: list[dict[str, Any]], finish: str | None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", **extra}


def test_text_answer_with_thinking_tokens() -> None:
    raw = orjson.dumps(
        answer(
            [{"text": "thinking...", "thought": True}, {"text": "Hello"}, {"text": " there"}],
            "STOP",
            usageMetadata=USAGE,
            responseId="abc",
        )
    )
    body, usage = read_generate_response(raw, "chat")
    out = orjson.loads(body)

    assert out["object"] == "chat.completion"
    assert out["model"] == "gemini-2.5-flash"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    # Thinking tokens are billed as output.
    assert (usage.input_tokens, usage.output_tokens) == (11, 12)
    assert out["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 12,
        "total_tokens": 23,
        "completion_tokens_details": {"reasoning_tokens": 5},
    }


def test_function_call_answer_becomes_tool_calls_with_the_thought_signature() -> None:
    raw = orjson.dumps(
        answer(
            [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
            "STOP",
        )
    )
    message = orjson.loads(read_generate_response(raw, "chat")[0])["choices"][0]

    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] is None
    first, second = message["message"]["tool_calls"]
    assert first["id"].startswith("call_")
    assert first["id"] != second["id"]
    assert first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert first["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert second["function"] == {"name": "get_time", "arguments": "{}"}
    assert "extra_content" not in second


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    raw = orjson.dumps(answer([{"text": "x"}], finish))
    assert orjson.loads(read_generate_response(raw, "m")[0])["choices"][0]["finish_reason"] == (
        expected
    )


def test_blocked_prompt_has_no_candidates() -> None:
    raw = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": USAGE})
    choice = orjson.loads(read_generate_response(raw, "m")[0])["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None


def feed_all(stream: GenerateContentStream, chunks: Iterable[Any]) -> list[Any]:
    out: list[bytes] = []
    for chunk in chunks:
        if chunk is END_OF_STREAM:
            out.extend(stream.feed(END_OF_STREAM, b""))
        else:
            out.extend(stream.feed(None, orjson.dumps(chunk)))
    events = []
    for event in out:
        assert event.startswith(b"data: ")
        assert event.endswith(b"\n\n")
        data = event[6:-2]
        events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


def test_stream_translates_chunks_and_reads_usage_from_the_last_one() -> None:
    stream = GenerateContentStream("chat", client_wants_usage=True)
    first_usage = {"promptTokenCount": 11, "candidatesTokenCount": 1, "totalTokenCount": 12}
    last_usage = {"promptTokenCount": 11, "candidatesTokenCount": 4, "totalTokenCount": 15}
    events = feed_all(
        stream,
        [
            answer([{"text": "Hel"}], None, usageMetadata=first_usage),
            answer([{"text": "lo"}], "STOP", usageMetadata=last_usage),
        ],
    )
    assert stream.done  # the finish reason is the provider's proper end
    events += feed_all(stream, [END_OF_STREAM])

    deltas = [e["choices"][0]["delta"] for e in events[:3]]
    assert deltas == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}, {}]
    assert events[2]["choices"][0]["finish_reason"] == "stop"
    assert events[3]["choices"] == []
    assert events[3]["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    assert events[4] == "[DONE]"
    assert len(events) == 5
    assert {e["id"] for e in events[:4]} == {events[0]["id"]}
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (11, 4)


def test_stream_function_call_and_no_usage_chunk_unless_asked() -> None:
    stream = GenerateContentStream("chat", client_wants_usage=False)
    events = feed_all(
        stream,
        [
            answer(
                [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
                "STOP",
                usageMetadata=USAGE,
            ),
            END_OF_STREAM,
        ],
    )

    call = events[0]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert events[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[2] == "[DONE]"
    assert len(events) == 3
    assert stream.usage.input_tokens == 11  # accounted even when not forwarded


def test_stream_that_ends_cleanly_without_finish_reason_is_done() -> None:
    stream = GenerateContentStream("chat", client_wants_usage=False)
    events = feed_all(stream, [answer([{"text": "Hi"}], None)])
    assert not stream.done
    events += feed_all(stream, [END_OF_STREAM])

    assert stream.done
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"


def test_stream_chunks_without_content_write_nothing() -> None:
    stream = GenerateContentStream("chat", client_wants_usage=True)
    assert list(stream.feed(None, orjson.dumps({"usageMetadata": USAGE}))) == []


@pytest.mark.parametrize(
    "data",
    [
        orjson.dumps({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}),
        b'{"candidates": [{"content": ',
        b"[1, 2]",
    ],
)
def test_stream_errors_and_garbage_raise_upstream_protocol(data: bytes) -> None:
    stream = GenerateContentStream("chat", client_wants_usage=False)
    list(stream.feed(None, orjson.dumps(answer([{"text": "a"}], None))))
    with pytest.raises(UpstreamProtocol):
        list(stream.feed(None, data))


def test_google_error_becomes_an_openai_error() -> None:
    google = orjson.dumps(
        {
            "error": {
                "code": 400,
                "message": "* GenerateContentRequest.contents: contents is not specified",
                "status": "INVALID_ARGUMENT",
            }
        }
    )
    assert orjson.loads(error_to_openai(400, google)) == {
        "error": {
            "message": "* GenerateContentRequest.contents: contents is not specified",
            "type": "invalid_request_error",
            "param": None,
            "code": "INVALID_ARGUMENT",
        }
    }
    assert orjson.loads(error_to_openai(404, b"<html>nope</html>"))["error"]["message"] == (
        "<html>nope</html>"
    )


def test_thought_signature_survives_a_round_trip_through_the_openai_sdk() -> None:
    # Gemini 3 refuses a conversation whose function calls lost their signatures (400).
    raw = orjson.dumps(
        answer(
            [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "Q2lnbmF0dXJl",
                }
            ],
            "STOP",
        )
    )
    parsed = ChatCompletion.model_validate_json(read_generate_response(raw, "chat")[0])
    assistant = parsed.choices[0].message.model_dump(exclude_none=True)
    call_id = assistant["tool_calls"][0]["id"]
    follow_up = {
        "model": "chat",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": call_id, "content": "21C"},
        ],
    }

    sent = orjson.loads(adapter().build(Call(Operation.CHAT, follow_up, stream=False), "m").body)
    assert sent["contents"][1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "Q2lnbmF0dXJl",
        }
    ]
