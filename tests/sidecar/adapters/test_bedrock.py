"""The Bedrock Converse adapter (adapters/bedrock.py).

The wire format is checked against AWS's own service model as botocore ships it: request
bodies must validate against the ``Converse`` input shape and equal what botocore's
serializer writes for the same parameters. Signatures are checked by the simulator's
independent SigV4 implementation, event-stream framing by its independent encoder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.serialize
import botocore.session
import botocore.validate
import openai
import orjson
import pytest

from aiguillage.devtools.simulators import sigv4
from aiguillage.devtools.simulators.bedrock import BedrockSimulator
from aiguillage.devtools.simulators.eventstream import encode_message
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.bedrock import (
    BedrockAdapter,
    ConverseStream,
    error_to_openai,
    event_stream,
    read_converse_response,
)
from aiguillage.sidecar.adapters.openai_chat import END_OF_STREAM, UnsupportedRequest
from aiguillage.sidecar.config import Provider, SizeLimits, Target
from aiguillage.sidecar.errors import (
    ConfigError,
    MalformedAnswer,
    ResponseTooLarge,
    UpstreamProtocol,
)
from tests.sidecar.adapters._sidecar import route, running_sidecar

AKID, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "eu-central-1"
CREDENTIAL = orjson.dumps({"accessKeyId": AKID, "secretAccessKey": SECRET}).decode()
MODEL = "eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
PNG_BYTES = b"\x89PNG\r\n\x1a\nnot really"
PNG = base64.b64encode(PNG_BYTES).decode()
HELLO = "Hello from bedrock-sim! This is a simulated answer."
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
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this? And the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "21C"},
        {"role": "user", "content": "Answer as JSON."},
    ],
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": {"type": "object"}},
    },
    "max_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": "END",
    "seed": 3,
}
EXPECTED_BODY = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"text": "What is this? And the weather in Paris?"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "21C"}]}},
                {"text": "Answer as JSON."},
            ],
        },
    ],
    "system": [{"text": "You are terse."}],
    "inferenceConfig": {
        "maxTokens": 256,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    },
    "toolConfig": {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {"json": WEATHER},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "get_weather"}},
    },
    "outputConfig": {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": '{"type":"object"}', "name": "weather"}},
        }
    },
}


def adapter(
    endpoint: str = f"https://bedrock-runtime.{REGION}.amazonaws.com",
    credential: str | None = CREDENTIAL,
    **options: str,
) -> BedrockAdapter:
    return BedrockAdapter(
        Provider(api="bedrock", endpoint=endpoint, credential="aws", options=options), credential
    )


# -- request ---------------------------------------------------------------------------------


def test_request_matches_the_converse_service_model() -> None:
    req = adapter().build(Call(Operation.CHAT, REQUEST, stream=False), MODEL)
    body = orjson.loads(req.body)
    assert body == EXPECTED_BODY

    # AWS's model of the API (as botocore ships it) accepts these parameters, and its
    # serializer writes the very same JSON and path.
    operation = botocore.session.get_session().get_service_model("bedrock-runtime")
    converse = operation.operation_model("Converse")
    params = {"modelId": MODEL, **orjson.loads(req.body)}
    params["messages"][0]["content"][1]["image"]["source"]["bytes"] = PNG_BYTES
    botocore.validate.validate_parameters(params, converse.input_shape)
    wire = botocore.serialize.create_serializer("rest-json").serialize_to_request(params, converse)
    assert orjson.loads(wire["body"]) == body
    assert wire["url_path"] == "/model/eu.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    # aiohttp sends ":" unescaped (both are the same path; the signature covers what is sent).
    assert req.url == f"https://bedrock-runtime.{REGION}.amazonaws.com/model/{MODEL}/converse"


def test_stream_request_path_and_accept() -> None:
    req = adapter().build(Call(Operation.CHAT, REQUEST, stream=True), MODEL)
    assert req.url.endswith(f"/model/{MODEL}/converse-stream")
    assert req.headers["accept"] == "application/vnd.amazon.eventstream"
    converse = botocore.session.get_session().get_service_model("bedrock-runtime")
    params = {"modelId": MODEL, **orjson.loads(req.body)}
    params["messages"][0]["content"][1]["image"]["source"]["bytes"] = PNG_BYTES
    botocore.validate.validate_parameters(
        params, converse.operation_model("ConverseStream").input_shape
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": 2}, '"n"'),
        ({"tool_choice": "none"}, "tool_choice"),
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
    ],
)
def test_what_converse_cannot_express_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedRequest, match=message):
        adapter().build(Call(Operation.CHAT, {**REQUEST, **change}, stream=False), MODEL)


def test_tool_choice_none_without_tool_history_drops_the_tools() -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    req = adapter().build(
        Call(Operation.CHAT, {**body, "tools": TOOLS, "tool_choice": "none"}, False), MODEL
    )
    assert orjson.loads(req.body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    auto = adapter().build(Call(Operation.CHAT, {**body, "tools": TOOLS}, False), MODEL)
    assert "toolChoice" not in orjson.loads(auto.body)["toolConfig"]


# -- signing and config ----------------------------------------------------------------------


def test_requests_are_signed_with_sigv4_for_bedrock() -> None:
    temporary = orjson.dumps(
        {"accessKeyId": AKID, "secretAccessKey": SECRET, "sessionToken": "TOKEN"}
    ).decode()
    req = adapter("http://127.0.0.1:8080", temporary, region=REGION).build(
        Call(Operation.CHAT, REQUEST, stream=False), MODEL
    )
    headers = req.headers
    amz_date = headers["X-Amz-Date"]
    cred = sigv4.parse_authorization(headers["Authorization"])

    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AKID}/{amz_date[:8]}/{REGION}/bedrock/aws4_request"
    )
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    assert {"host", "x-amz-date", "x-amz-security-token", "content-type"} <= set(
        cred.signed_headers
    )
    # Re-derive the signature independently, from the request as the server receives it.
    path = req.url.removeprefix("http://127.0.0.1:8080")
    received = [*headers.items(), ("Host", "127.0.0.1:8080")]
    canonical = sigv4.canonical_request(
        "POST", path, "", received, cred.signed_headers, hashlib.sha256(req.body).hexdigest()
    )
    assert sigv4.signature(SECRET, amz_date, REGION, "bedrock", canonical) == cred.signature


def test_region_comes_from_the_endpoint_host_else_options() -> None:
    req = adapter("https://bedrock-runtime.eu-west-3.amazonaws.com").build(
        Call(Operation.CHAT, REQUEST, stream=False), MODEL
    )
    assert "/eu-west-3/bedrock/aws4_request" in req.headers["Authorization"]
    with pytest.raises(ConfigError, match=r"options\.region"):
        adapter("https://vpce-0abc.bedrock-runtime.example.internal")


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        (None, "needs a credential"),
        ("{not json", "not valid JSON"),
        ('{"accessKeyId": "AKID"}', "secretAccessKey"),
    ],
)
def test_bad_credentials_are_config_errors_without_the_secret(
    credential: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        adapter(credential=credential)
    assert SECRET not in str(info.value)


def test_a_non_json_credential_is_a_bedrock_api_key() -> None:
    req = adapter(credential="ABSKQmVkcm9ja0FQSUtleQ==").build(
        Call(Operation.CHAT, REQUEST, stream=False), MODEL
    )
    assert req.headers["authorization"] == "Bearer ABSKQmVkcm9ja0FQSUtleQ=="


# -- answers ---------------------------------------------------------------------------------


def test_documented_text_answer() -> None:
    raw = orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello!"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 30, "outputTokens": 628, "totalTokens": 658},
            "metrics": {"latencyMs": 1275},
        }
    )
    body, usage = read_converse_response(raw, "chat")
    out = orjson.loads(body)

    assert out["choices"][0]["message"]["content"] == "Hello!"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 30, "completion_tokens": 628, "total_tokens": 658}
    assert (usage.input_tokens, usage.output_tokens) == (30, 628)


def test_documented_tool_use_answer() -> None:
    raw = orjson.dumps(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"text": "I'll look it up."},
                        {
                            "toolUse": {
                                "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                                "name": "top_song",
                                "input": {"sign": "WZPZ"},
                            }
                        },
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 375, "outputTokens": 58, "totalTokens": 433},
            "metrics": {"latencyMs": 1050},
        }
    )
    choice = orjson.loads(read_converse_response(raw, "chat")[0])["choices"][0]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll look it up."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'},
        }
    ]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    raw = orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
            "stopReason": stop,
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1},
        }
    )
    assert (
        orjson.loads(read_converse_response(raw, "m")[0])["choices"][0]["finish_reason"] == finish
    )


def test_bedrock_error_becomes_an_openai_error() -> None:
    body = error_to_openai(400, b'{"message":"Malformed input request"}')
    assert orjson.loads(body)["error"] == {
        "message": "Malformed input request",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


# -- streams ---------------------------------------------------------------------------------


def frame(event: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, orjson.dumps(payload))


def exception(name: str, message: str) -> bytes:
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, orjson.dumps({"message": message}))


TOOL_STREAM = [
    frame("messageStart", {"role": "assistant"}),
    frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check"}}),
    frame("contentBlockStop", {"contentBlockIndex": 0}),
    frame(
        "contentBlockStart",
        {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tu_1", "name": "get_weather"}},
        },
    ),
    frame(
        "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city"'}}}
    ),
    frame(
        "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ':"Oslo"}'}}}
    ),
    frame("contentBlockStop", {"contentBlockIndex": 1}),
    frame("messageStop", {"stopReason": "tool_use"}),
    frame(
        "metadata",
        {
            "usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52},
            "metrics": {"latencyMs": 300},
        },
    ),
]


class _Response:
    """What the decoder reads of a provider's answer: its body, cut in pieces of ``size``."""

    def __init__(self, data: bytes, size: int) -> None:
        self._pieces = [data[i : i + size] for i in range(0, len(data), size)]

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


async def decode(
    data: bytes, size: int = 7, limits: SizeLimits | None = None
) -> list[tuple[str | None, bytes]]:
    response = _Response(data, size)
    events = event_stream(response, limits or SizeLimits())  # type: ignore[arg-type]
    return [item async for batch in events for item in batch]


async def test_decoder_yields_events_across_arbitrary_splits_then_the_end() -> None:
    events = await decode(b"".join(TOOL_STREAM))

    assert [e for e, _ in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
        END_OF_STREAM,
    ]
    assert orjson.loads(events[1][1])["delta"] == {"text": "Let me check"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            TOOL_STREAM[0] + exception("throttlingException", "Too many tokens"),
            "throttlingException",
        ),
        (
            TOOL_STREAM[0] + exception("modelStreamErrorException", "Model failed"),
            "modelStreamErrorException in the stream: Model failed",
        ),
        (TOOL_STREAM[0] + TOOL_STREAM[1][:-3], "middle of an event-stream frame"),
        (TOOL_STREAM[0][:-1] + b"\x00", "bad event-stream frame"),
    ],
)
async def test_decoder_raises_on_exceptions_and_broken_frames(data: bytes, message: str) -> None:
    with pytest.raises(UpstreamProtocol, match=message):
        await decode(data)


def raw_frame(raw_headers: bytes, payload: bytes) -> bytes:
    """A frame with headers exactly as given (framing and CRCs right)."""
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def string_header(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + b"\x07" + struct.pack(">H", len(value)) + value


async def test_a_header_that_is_not_utf8_is_a_malformed_answer() -> None:
    headers = string_header(b":message-type", b"event") + string_header(b":event-type", b"\xff")
    data = TOOL_STREAM[0] + raw_frame(headers, b"{}")
    with pytest.raises(MalformedAnswer, match="event-stream header that is not UTF-8"):
        await decode(data, size=len(data))


async def test_a_frame_past_the_event_limit_is_too_large() -> None:
    small = SizeLimits(max_event_bytes=1024)
    big = frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 200_000}})
    assert [e for e, _ in await decode(big, size=4096)] == ["contentBlockDelta", END_OF_STREAM]
    with pytest.raises(ResponseTooLarge, match="event-stream frame over"):
        await decode(big, size=4096, limits=small)


@pytest.mark.parametrize(
    "usage",
    [{"inputTokens": -1}, {"outputTokens": "12"}, {"inputTokens": 1.5}, {"outputTokens": 10**10}],
)
def test_usage_that_is_not_a_token_count_is_a_malformed_answer(usage: dict[str, Any]) -> None:
    raw = orjson.dumps({"output": {"message": {"content": []}}, "usage": usage})
    with pytest.raises(MalformedAnswer, match="usage"):
        read_converse_response(raw, "m")
    translator = ConverseStream("chat", client_wants_usage=True)
    with pytest.raises(MalformedAnswer, match="usage"):
        translator.feed("metadata", orjson.dumps({"usage": usage}))
    assert (translator.usage.input_tokens, translator.usage.output_tokens) == (0, 0)


async def test_stream_translation_with_tool_use_and_usage() -> None:
    translator = ConverseStream("chat", client_wants_usage=True)
    out: list[bytes] = []
    for event, payload in await decode(b"".join(TOOL_STREAM)):
        out.extend(translator.feed(event, payload))
    chunks = [orjson.loads(c[6:]) for c in out[:-1]]

    assert translator.done
    assert out[-1] == b"data: [DONE]\n\n"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Let me check"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"] == [
        {
            "index": 0,
            "id": "tu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    arguments = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[2:4]
    ]
    assert "".join(arguments) == '{"city":"Oslo"}'
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["choices"] == []
    assert chunks[5]["usage"] == {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    assert len(chunks) == 6


async def test_a_stream_that_closes_before_message_stop_is_not_done() -> None:
    translator = ConverseStream("chat", client_wants_usage=False)
    out: list[bytes] = []
    for event, payload in await decode(b"".join(TOOL_STREAM[:3])):
        out.extend(translator.feed(event, payload))
    assert not translator.done
    assert b"[DONE]" not in b"".join(out)


async def collect(stream: Any, into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.choices[0].delta.content or "")


# -- through a real sidecar ------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[BedrockSimulator]:
    simulator = BedrockSimulator("bedrock-sim", api_key=AKID, secret_key=SECRET, region=REGION)
    await simulator.start()
    yield simulator
    await simulator.stop()


def provider(sim: BedrockSimulator) -> Provider:
    return Provider(
        api="bedrock", endpoint=sim.url, location="DE", credential="aws", options={"region": REGION}
    )


@pytest.fixture
async def client(sim: BedrockSimulator, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    routes = [route("chat", Target(provider="bedrock", model=MODEL))]
    async with running_sidecar(
        tmp_path, {"bedrock": provider(sim)}, routes, {"aws": CREDENTIAL}
    ) as c:
        yield c


async def test_chat_is_signed_and_verified(
    client: openai.AsyncOpenAI, sim: BedrockSimulator
) -> None:
    completion = await client.chat.completions.create(
        model="chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )

    assert completion.choices[0].message.content == HELLO
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 8)
    seen = sim.last_request
    assert seen.path == f"/model/{MODEL}/converse"
    signed_at = datetime.strptime(seen.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 300
    today = seen.headers["x-amz-date"][:8]
    assert seen.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AKID}/{today}/{REGION}/bedrock/aws4_request, "
    )
    assert seen.body["system"] == [{"text": "Be brief."}]


async def test_stream_with_usage(client: openai.AsyncOpenAI, sim: BedrockSimulator) -> None:
    stream = await client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1, 8)
    assert sim.last_request.path == f"/model/{MODEL}/converse-stream"


async def test_tool_call_round_trip(client: openai.AsyncOpenAI, sim: BedrockSimulator) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await client.chat.completions.create(model="chat", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "12C"},
    ]
    stream = await client.chat.completions.create(
        model="chat", messages=messages, tools=TOOLS, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert text == HELLO
    assert sim.last_request.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": call.id,
                        "name": "get_weather",
                        "input": {"city": HELLO},
                    }
                }
            ],
        },
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": "12C"}]}}],
        },
    ]


async def test_streamed_tool_call(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    )
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]

    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    arguments = "".join(tc.function.arguments or "" for tc in calls)  # type: ignore[union-attr]
    assert json.loads(arguments) == {"city": HELLO}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_in_stream_exception_after_first_bytes_ends_the_stream_with_an_error(
    client: openai.AsyncOpenAI, sim: BedrockSimulator
) -> None:
    sim.set_faults([{"kind": "in_stream_error", "after_chunks": 2, "status": 429}])
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="throttlingException"):
        await collect(stream, received)
    assert "".join(received) == "Hello from bedrock-sim! This"


async def test_in_stream_exception_before_any_content_fails_over(
    sim: BedrockSimulator, tmp_path: Path
) -> None:
    providers = {"first": provider(sim), "second": provider(sim)}
    chat = route(
        "chat",
        Target(provider="first", model=MODEL, priority=0),
        Target(provider="second", model="eu.amazon.nova-lite-v1:0", priority=1),
    )
    sim.set_faults([{"kind": "in_stream_error", "after_chunks": 0}])
    async with running_sidecar(tmp_path, providers, [chat], {"aws": CREDENTIAL}) as client:
        response = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in response.parse()])

    assert text == HELLO
    assert response.headers["x-aiguillage-provider"] == "second"
    assert [r.path for r in sim.requests] == [
        f"/model/{MODEL}/converse-stream",
        "/model/eu.amazon.nova-lite-v1:0/converse-stream",
    ]


async def test_validation_exception_is_relayed_in_openai_shape(
    client: openai.AsyncOpenAI, sim: BedrockSimulator
) -> None:
    sim.set_faults([{"kind": "status", "status": 400, "message": "Malformed input request."}])
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body == {
        "message": "Malformed input request.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
