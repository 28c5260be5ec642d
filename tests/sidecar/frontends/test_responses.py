"""The Responses API on every provider format (frontends/responses.py, responses_answer.py).

Unit tests of the translation both ways, then the official ``openai`` SDK's
``responses.create`` and ``responses.stream`` against a sidecar in front of each simulated
provider format (OpenAI passes through; the others are translated through chat completions).
Every event and answer is validated with the SDK's own types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import openai
import orjson
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.adapters.base import StreamTranslator, Usage
from aiguillage.sidecar.adapters.openai_chat import UnsupportedRequest
from aiguillage.sidecar.frontends.responses import RESPONSES, chat_body
from aiguillage.sidecar.frontends.responses_answer import ResponseEvents, response_body
from tests.sidecar.conftest import RunningSidecar

EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
TOOL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


# -- request translation ---------------------------------------------------------------------


def test_instructions_items_tools_and_format_become_a_chat_request() -> None:
    body = {
        "model": "chat",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me check."}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "get_weather",
                "arguments": '{"city":"Bergen"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "12C"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "9C"}],
            },
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "max_output_tokens": 50,
        "temperature": 0.2,
        "store": True,
        "reasoning": {"effort": "low"},
        "metadata": {"team": "a"},
        "stream": True,
    }

    assert chat_body(body) == {
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {
                "role": "assistant",
                "content": "Let me check.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "12C"},
            {"role": "tool", "tool_call_id": "c2", "content": "9C"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": WEATHER["parameters"],
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, 'tools of type "web_search"'),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, 'items of type "item_reference"'),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            'parts of type "input_file"',
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "image_url",
        ),
        ({"input": []}, '"input"'),
        ({"text": {"format": {"type": "xml"}}}, '"text.format"'),
    ],
)
def test_what_chat_completions_cannot_give_is_refused_naming_it(
    change: dict[str, Any], names: str
) -> None:
    with pytest.raises(UnsupportedRequest) as info:
        chat_body({"model": "chat", "input": "hi", **change})
    assert names in str(info.value)
    assert info.value.status == 400


# -- answers ---------------------------------------------------------------------------------


def chat_completion(**message: Any) -> bytes:
    finish = message.pop("finish_reason", "stop")
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "claude-sonnet-4-5",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        }
    )


def test_a_chat_completion_becomes_a_response_object() -> None:
    request = {"model": "chat", "input": "hi", "tools": [WEATHER], "metadata": {"a": "b"}}
    raw = chat_completion(
        content="Checking.",
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
        finish_reason="tool_calls",
    )
    response = Response.model_validate(orjson.loads(response_body(request, raw)))

    assert (response.status, response.model, response.metadata) == (
        "completed",
        "claude-sonnet-4-5",
        {"a": "b"},
    )
    assert response.output_text == "Checking."
    call = response.output[1]
    assert (call.type, call.call_id, call.name, call.arguments) == (  # type: ignore[union-attr]
        "function_call",
        "call_1",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.tools[0].name == "get_weather"  # type: ignore[union-attr]


def test_a_cut_answer_is_an_incomplete_response() -> None:
    raw = chat_completion(content="Hello fr", finish_reason="length")
    response = Response.model_validate(orjson.loads(response_body({"input": "hi"}, raw)))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


class Chunks(StreamTranslator):
    """A canonical translator that writes the chat chunks it is fed, as they are."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        return (b"data: " + data + b"\n\n",)


def events_of(written: list[bytes]) -> list[Any]:
    events = []
    for frame in b"".join(written).split(b"\n\n"):
        if frame.strip():
            name, data = frame.split(b"\n", 1)
            event = EVENT.validate_json(data.removeprefix(b"data: "))
            assert name == b"event: " + event.type.encode()
            events.append(event)
    return events


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def test_stream_events_come_in_openais_order_numbered_from_zero() -> None:
    events = ResponseEvents(Chunks(), {"model": "chat", "input": "hi"})
    written: list[bytes] = []
    for data in (
        chunk({"role": "assistant", "content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
        orjson.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            }
        ),
        b"[DONE]",
    ):
        written.extend(events.feed(None, data))

    parsed = events_of(written)
    assert [e.type for e in parsed] == [
        *TEXT_EVENTS[:5],
        "response.output_text.delta",
        *TEXT_EVENTS[5:8],
        *TOOL_EVENTS[2:4],
        "response.function_call_arguments.delta",
        *TOOL_EVENTS[4:],
    ]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    final = parsed[-1].response
    assert final.output_text == "Hello"
    assert final.output[1].arguments == '{"a":1}'
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert events.done
    assert events.sequence_number == len(parsed)


def test_nothing_is_written_before_the_first_content() -> None:
    events = ResponseEvents(Chunks(), {"model": "chat", "input": "hi"})
    assert list(events.feed(None, chunk({"role": "assistant"}))) == []


def test_the_stream_error_event_is_numbered_after_what_the_client_has() -> None:
    events = ResponseEvents(Chunks(), {"model": "chat", "input": "hi"})
    written = list(events.feed(None, chunk({"content": "Hel"})))
    written.append(RESPONSES.stream_error("provider stream failed: cut", "protocol_error", events))

    parsed = events_of(written)
    error = parsed[-1]
    assert error.type == "error"
    assert (error.code, error.message, error.param) == (
        "protocol_error",
        "provider stream failed: cut",
        None,
    )
    assert error.sequence_number == parsed[-2].sequence_number + 1


# -- through a sidecar, on every provider format ---------------------------------------------


def test_create(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    response = sidecar.client().responses.create(
        model="chat", instructions="Be brief.", input="Say hello"
    )

    assert sim.name in response.output_text
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    translated = sim.kind != "openai"
    sent = sim.last_request
    if translated:
        assert not sent.path.endswith("/responses")
        assert "Be brief." in json.dumps(sent.body)
    else:
        assert sent.path == "/v1/responses"


def test_stream(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    with sidecar.client().responses.stream(model="chat", input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()

    names = [e.type for e in events]
    assert names[:4] == TEXT_EVENTS[:4]
    assert names[-4:] == TEXT_EVENTS[-4:]
    assert set(names[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert sim.name in final.output_text
    assert final.usage is not None
    assert final.usage.total_tokens > 0


def test_function_call_round_trip(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    client = sidecar.client()
    first = client.responses.create(model="chat", input="Weather in Oslo?", tools=[WEATHER])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {
        "city": f"Hello from {sim.name}! This is a simulated answer."
    }

    second = client.responses.create(
        model="chat",
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "12C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert sim.name in second.output_text


def test_streamed_function_call(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, _ = served
    with sidecar.client().responses.stream(
        model="chat",
        input="Weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()

    assert [e.type for e in events] == TOOL_EVENTS
    assert final.output[0].type == "function_call"
    assert json.loads(final.output[0].arguments)["city"]  # type: ignore[union-attr]


def test_json_schema_text_format(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
        "required": ["city", "celsius"],
        "additionalProperties": False,
    }
    response = sidecar.client().responses.create(
        model="chat",
        input="Weather in Oslo as JSON",
        text={
            "format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}
        },
    )
    assert json.loads(response.output_text) == {
        "city": f"Hello from {sim.name}! This is a simulated answer.",
        "celsius": 1,
    }


def test_refused_fields_are_a_400_in_openai_shape(
    served: tuple[RunningSidecar, Simulator],
) -> None:
    sidecar, sim = served
    if sim.kind == "openai":
        pytest.skip("OpenAI stores responses: previous_response_id passes through to it")
    with pytest.raises(openai.BadRequestError) as info:
        sidecar.client().responses.create(
            model="chat", input="and then?", previous_response_id="resp_123"
        )
    assert "previous_response_id" in str(info.value)
    assert info.value.code == "unsupported_by_provider"
    assert sim.requests == []


def test_a_stream_broken_after_its_first_bytes_ends_with_an_error_event(
    served: tuple[RunningSidecar, Simulator],
) -> None:
    sidecar, sim = served
    sim.configure(chunks=6)
    sim.set_faults([{"kind": "in_stream_error", "after_chunks": 2}])
    with sidecar.client().responses.create(model="chat", input="Say hello", stream=True) as stream:
        events = list(stream)

    error = events[-1]
    assert error.type == "error"
    assert error.message.startswith("provider stream failed")
    assert error.param is None
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.completed" not in [e.type for e in events]
