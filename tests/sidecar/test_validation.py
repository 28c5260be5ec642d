"""Client mistakes in request bodies (``validation.py``): a 400 in the client's API shape that
names the field, before any provider is contacted, and an audit record saying so."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.base import Operation
from aiguillage.sidecar.errors import InvalidRequest
from aiguillage.sidecar.validation import MAX_DEPTH, check, model
from tests.sidecar._wire import anthropic_error, openai_error
from tests.sidecar.conftest import (
    MESSAGES,
    RunningSidecar,
)

CHAT = {"model": "chat", "messages": MESSAGES}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def refused(operation: Operation, body: dict[str, Any]) -> InvalidRequest:
    raw = orjson.dumps(body)
    with pytest.raises(InvalidRequest) as caught:
        check(operation, body, raw)
    return caught.value


# -- the checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"stream": 1}, "stream"),
        ({"stream": "true"}, "stream"),
        ({"stop": 7}, "stop"),
        ({"stop": ["ok", 3]}, "stop[1]"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": ["get_weather"]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": "get_weather"}]}, "tools[0].function"),
        ({"stream_options": True}, "stream_options"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"n": True}, "n"),
        ({"n": 0}, "n"),
        ({"temperature": "hot"}, "temperature"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"response_format": "json"}, "response_format"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": ["hello"]}, "messages[0]"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": {"id": "c1"}}]},
            "messages[0].tool_calls",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": ["c1"]}]},
            "messages[0].tool_calls[0]",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "function": "f"}]}]},
            "messages[0].tool_calls[0].function",
        ),
        (
            {"messages": [{"role": "tool", "tool_call_id": 5, "content": "x"}]},
            "messages[0].tool_call_id",
        ),
    ],
)
def test_chat_fields_of_the_wrong_type_are_named(extra: dict[str, Any], field: str) -> None:
    error = refused(Operation.CHAT, {**CHAT, **extra})
    assert error.field == field
    assert str(error).startswith(f"{field}: ")


def test_messages_are_required() -> None:
    assert refused(Operation.CHAT, {"model": "chat"}).field == "messages"
    assert refused(Operation.MESSAGES, {"model": "m", "max_tokens": 5}).field == "messages"
    assert refused(Operation.EMBEDDINGS, {"model": "e"}).field == "input"


def test_null_is_not_set() -> None:
    body = {**CHAT, "stream": None, "stop": None, "tools": None, "n": None, "max_tokens": None}
    assert check(Operation.CHAT, body, orjson.dumps(body)) == (False, False)


def test_what_the_sidecar_reads() -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    assert check(Operation.CHAT, body, orjson.dumps(body)) == (True, True)
    body = {**CHAT, "stream": False, "stream_options": {"include_usage": True}}
    assert check(Operation.CHAT, body, orjson.dumps(body)) == (False, True)


@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        (Operation.EMBEDDINGS, {"input": 5}, "input"),
        (Operation.EMBEDDINGS, {"input": []}, "input"),
        (Operation.EMBEDDINGS, {"input": ["a", None]}, "input[1]"),
        (Operation.EMBEDDINGS, {"input": [[1, "2"]]}, "input[0]"),
        (Operation.EMBEDDINGS, {"input": "a", "dimensions": "256"}, "dimensions"),
        (Operation.EMBEDDINGS, {"input": "a", "stream": True}, "stream"),
        (Operation.COMPLETIONS, {"prompt": {"text": "hi"}}, "prompt"),
        (Operation.COMPLETIONS, {"prompt": "hi", "stream": 1}, "stream"),
        (Operation.COMPLETIONS, {"prompt": "hi", "echo": "yes"}, "echo"),
        (Operation.RESPONSES, {"input": 3}, "input"),
        (Operation.RESPONSES, {"input": ["hi"]}, "input[0]"),
        (Operation.RESPONSES, {"input": "hi", "stream": "1"}, "stream"),
        (Operation.RESPONSES, {"input": "hi", "tools": {"type": "function"}}, "tools"),
        (Operation.RESPONSES, {"input": "hi", "max_output_tokens": "9"}, "max_output_tokens"),
        (Operation.MESSAGES, {"messages": {"role": "user"}}, "messages"),
        (Operation.MESSAGES, {"messages": [{"role": "user"}]}, "messages[0].content"),
        (Operation.MESSAGES, {"messages": MESSAGES, "system": 1}, "system"),
        (Operation.MESSAGES, {"messages": MESSAGES, "system": ["x"]}, "system[0]"),
        (Operation.MESSAGES, {"messages": MESSAGES, "stop_sequences": "END"}, "stop_sequences"),
        (Operation.MESSAGES, {"messages": MESSAGES, "max_tokens": "8"}, "max_tokens"),
        (Operation.MESSAGES, {"messages": MESSAGES, "tool_choice": "auto"}, "tool_choice"),
        (Operation.MESSAGES, {"messages": MESSAGES, "stream": 1}, "stream"),
    ],
)
def test_other_operations(operation: Operation, body: dict[str, Any], field: str) -> None:
    assert refused(operation, {"model": "m", **body}).field == field


@pytest.mark.parametrize("value", [None, "", 5, ["chat"]])
def test_model_must_be_a_non_empty_string(value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        model({"model": value})
    assert caught.value.code == "model_required"


def test_depth_up_to_the_limit_passes_and_beyond_is_refused() -> None:
    # MAX_DEPTH levels in all: the body object, "metadata", then nested lists.
    ok = {**CHAT, "metadata": {"x": nested(MAX_DEPTH - 2)}}
    check(Operation.CHAT, ok, orjson.dumps(ok))
    deep = {**CHAT, "metadata": {"x": nested(MAX_DEPTH - 1)}}
    error = refused(Operation.CHAT, deep)
    assert error.code == "nested_too_deep"
    assert str(MAX_DEPTH) in str(error)


def test_tool_call_arguments_too_deep_once_parsed_are_refused() -> None:
    # Arguments are a JSON text: flat in the body, but translating adapters parse and embed it.
    arguments = json.dumps({"x": nested(300)})
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = {**CHAT, "messages": [{"role": "assistant", "tool_calls": [call]}]}
    error = refused(Operation.CHAT, body)
    assert error.field == "messages[0].tool_calls[0].function.arguments"
    assert error.code == "nested_too_deep"

    body = {"model": "m", "input": [{"type": "function_call", "arguments": arguments}]}
    assert refused(Operation.RESPONSES, body).field == "input[0].arguments"


def test_brackets_inside_strings_do_not_refuse_a_flat_body() -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "[" * 5000}]}
    check(Operation.CHAT, body, orjson.dumps(body))


# -- through the sidecar --------------------------------------------------------------------------


def test_non_boolean_stream_is_a_400_and_no_provider_is_billed(
    three: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = three.raw("POST", "/v1/chat/completions", json={**CHAT, "stream": 1})

    assert resp.status == 400
    error = openai_error(resp.body)
    assert (error.type, error.code) == ("invalid_request_error", "invalid_request")
    assert error.message.startswith("stream: must be true or false")
    assert eu.requests == []
    assert us.requests == []
    record = three.audit_for(resp.headers["x-request-id"])
    assert (record["outcome"], record["status"], record["route"]) == (
        "invalid_request",
        400,
        "chat",
    )
    assert record["attempts"] == []
    assert record["costEur"] is None


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {**CHAT, "stop": 7}, "stop"),
        ("/v1/chat/completions", {**CHAT, "tools": {"a": 1}}, "tools"),
        ("/v1/chat/completions", {**CHAT, "stream_options": [1]}, "stream_options"),
        ("/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": "5"}, "max_tokens"),
        ("/v1/embeddings", {"model": "embed", "input": {"text": "x"}}, "input"),
        ("/v1/responses", {"model": "chat", "input": 12}, "input"),
    ],
)
def test_openai_endpoints_answer_the_openai_shape(
    three: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    resp = three.raw("POST", path, json=body)

    assert resp.status == 400
    assert openai_error(resp.body).message.startswith(f"{field}: ")
    assert eu.requests == []
    assert us.requests == []


def test_messages_endpoint_answers_the_anthropic_shape(
    three: RunningSidecar, claude: AnthropicSimulator
) -> None:
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": 3}]}
    resp = three.raw("POST", "/v1/messages", json=body)

    assert resp.status == 400
    error = anthropic_error(resp.body).error
    assert error.type == "invalid_request_error"
    assert error.message.startswith("messages[0].content: ")
    assert claude.requests == []


def test_deep_tool_call_arguments_are_a_400_not_a_500_on_a_translating_route(
    three: RunningSidecar, claude: AnthropicSimulator
) -> None:
    arguments = json.dumps({"x": nested(300)})
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    resp = three.raw("POST", "/v1/chat/completions", json={"model": "claude", "messages": messages})

    assert resp.status == 400
    assert openai_error(resp.body).code == "nested_too_deep"
    assert claude.requests == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_body_too_deep_to_re_serialise_is_a_400(
    three: RunningSidecar, eu: OpenAISimulator, claude: AnthropicSimulator, path: str
) -> None:
    # Parses (orjson reads 1024 levels) but cannot be written again (254): never a 500.
    model_name = "chat" if path.endswith("completions") else "claude"
    head = orjson.dumps({"model": model_name, "max_tokens": 8, "messages": MESSAGES})
    raw = head[:-1] + b',"extra":' + b"[" * 300 + b"]" * 300 + b"}"
    assert orjson.loads(raw)["extra"]
    resp = three.raw("POST", path, data=raw)

    assert resp.status == 400
    assert b"nested more than" in resp.body
    assert eu.requests == []
    assert claude.requests == []
    record = three.audit_for(resp.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("nested_too_deep", 400)
