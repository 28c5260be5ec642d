"""Which fields of each client API are scanned, and copies that never touch the original."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from aiguillage.sidecar.adapters.base import Operation
from aiguillage.sidecar.privacy.fields import REQUEST_FIELDS, strings, with_values

M = "x@example.eu"  # a marker in every field that must be scanned


def tool_args(value: str) -> str:
    return orjson.dumps({"to": value, "n": 1}).decode()


REQUESTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "chat.completions": (
        {
            "model": M,  # not text for the model
            "messages": [
                {"role": "system", "content": M},
                {"role": "developer", "content": [{"type": "text", "text": M}]},
                {"role": "user", "name": M, "content": [
                    {"type": "text", "text": M},
                    {"type": "image_url", "image_url": {"url": M}},
                ]},
                {"role": "assistant", "content": None, "refusal": M, "tool_calls": [
                    {"id": M, "type": "function",
                     "function": {"name": M, "arguments": tool_args(M)}},
                ]},
                {"role": "tool", "tool_call_id": M, "content": M},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": M}}],
        },
        {
            "messages.0.content", "messages.1.content.0.text", "messages.2.content.0.text",
            "messages.2.name", "messages.3.refusal",
            "messages.3.tool_calls.0.function.arguments.@json.to", "messages.4.content",
        },
    ),
    "completions": (
        {"model": M, "prompt": [M, M], "suffix": M},
        {"prompt.0", "prompt.1", "suffix"},
    ),
    "embeddings": ({"model": M, "input": M}, {"input"}),
    "responses": (
        {
            "model": M,
            "instructions": M,
            "input": [
                {"role": "user", "content": M},
                {"role": "user", "content": [{"type": "input_text", "text": M},
                                             {"type": "input_image", "image_url": M}]},
                {"type": "function_call", "call_id": M, "name": M, "arguments": tool_args(M)},
                {"type": "function_call_output", "call_id": M, "output": M},
            ],
        },
        {
            "instructions", "input.0.content", "input.1.content.0.text",
            "input.2.arguments.@json.to", "input.3.output",
        },
    ),
    "messages": (
        {
            "model": M,
            "system": [{"type": "text", "text": M}],
            "messages": [
                {"role": "user", "content": M},
                {"role": "assistant", "content": [
                    {"type": "text", "text": M},
                    {"type": "tool_use", "id": M, "name": M, "input": {"to": M, "cc": [M]}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": M, "content": M},
                    {"type": "tool_result", "tool_use_id": M,
                     "content": [{"type": "text", "text": M}]},
                    {"type": "image", "source": {"type": "base64", "data": M}},
                ]},
            ],
        },
        {
            "system.0.text", "messages.0.content", "messages.1.content.0.text",
            "messages.1.content.1.input.to", "messages.1.content.1.input.cc.0",
            "messages.2.content.0.content", "messages.2.content.1.content.0.text",
        },
    ),
}  # fmt: skip
# Token counting sends the provider a Messages body.
REQUESTS["messages.count_tokens"] = REQUESTS["messages"]


def test_every_client_api_has_a_table() -> None:
    assert REQUESTS.keys() == REQUEST_FIELDS.keys()
    # The request path scans every operation the sidecar serves.
    assert REQUEST_FIELDS.keys() == {operation.value for operation in Operation}


@pytest.mark.parametrize("operation", REQUESTS)
def test_the_text_the_provider_reads_is_scanned_and_nothing_else(operation: str) -> None:
    body, expected = REQUESTS[operation]
    paths = {
        ".".join(str(p) for p in slot.path) for slot in strings(body, REQUEST_FIELDS[operation])
    }
    assert paths == expected


def test_a_string_system_prompt_and_a_string_input() -> None:
    assert [s.path for s in strings({"system": M}, REQUEST_FIELDS["messages"])] == [("system",)]
    assert [s.path for s in strings({"input": M}, REQUEST_FIELDS["responses"])] == [("input",)]


def test_tool_arguments_that_are_not_json_are_scanned_as_text() -> None:
    body = {"messages": [{"tool_calls": [{"function": {"arguments": f"to={M}"}}]}]}
    (slot,) = strings(body, REQUEST_FIELDS["chat.completions"])
    assert slot.path == ("messages", 0, "tool_calls", 0, "function", "arguments")
    assert slot.text == f"to={M}"


def test_with_values_copies_only_what_it_changes() -> None:
    body, _ = REQUESTS["chat.completions"]
    before = copy.deepcopy(body)
    edited = with_values(
        body,
        {
            ("messages", 0, "content"): "A",
            ("messages", 3, "tool_calls", 0, "function", "arguments", "@json", "to"): "B",
        },
    )
    assert body == before  # the original is untouched
    assert edited["messages"][0]["content"] == "A"
    assert orjson.loads(edited["messages"][3]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "B",
        "n": 1,
    }
    assert edited["messages"][2] is body["messages"][2]  # unchanged parts are shared
    assert edited["tools"] is body["tools"]
