"""Checks of a client's request body before it is routed: the JSON types the sidecar relies on.

The handler (:mod:`aiguillage.sidecar.server`) parses the body once, finds the route from
:func:`model`, and calls :func:`check` with the operation the client called. ``check`` raises
:class:`~aiguillage.sidecar.errors.InvalidRequest` naming the field (``messages[2].tool_calls``,
``stop``...) when a value has a type no provider accepts and the sidecar or its adapters would
trip over, so the client gets a 400 in its own API's shape instead of a crash, a failover or a
bill at two providers (``"stream": 1`` would be read as "not streamed" by the sidecar and as
"streamed" by the provider).

Only types and the few ranges the sidecar itself depends on are checked here; what a value
means (a model's limits, a tool schema's validity) stays the provider's to judge, and what one
provider's wire format cannot express is refused by its adapter. ``null`` is read as "not set",
as the OpenAI API does. The checks walk only the fields present in the body and the messages'
top level, so they cost a few microseconds per request.

Depth: orjson parses up to 1024 levels of nesting but writes at most 254, and adapters nest a
client's values a few levels deeper when they translate. A body nested more than
:data:`MAX_DEPTH` levels is refused. It is measured only when the body holds more opening
brackets than that, by serialising it wrapped in ``254 - MAX_DEPTH`` levels of lists: orjson
then fails exactly when the body is deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from aiguillage.sidecar.adapters.base import Operation
from aiguillage.sidecar.errors import InvalidRequest

# orjson refuses to serialise more than this many levels of nesting.
ORJSON_MAX_DEPTH = 254
# Levels a body may have: the rest, up to orjson's limit, is left for adapters' wrapping.
MAX_DEPTH = 200

Check = Callable[[Any, str], None]


def model(body: dict[str, Any]) -> str:
    """The ``model`` a request body asks for (the route's name), or InvalidRequest."""
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise InvalidRequest("model", 'the request needs a "model" string', "model_required")
    return value


def check(operation: Operation, body: dict[str, Any], raw: bytes) -> tuple[bool, bool]:
    """``(stream, client_wants_usage)`` of a parsed request body, or InvalidRequest."""
    fields = FIELDS[operation]
    for name, value in body.items():
        if value is not None:
            checker = fields.get(name)
            if checker is not None:
                checker(value, name)
    for name in REQUIRED.get(operation, ()):
        if body.get(name) is None:
            raise InvalidRequest(name, "is required")
    stream = body.get("stream") is True
    if stream and operation is Operation.EMBEDDINGS:
        raise InvalidRequest("stream", "embeddings cannot be streamed; leave it out or false")
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    if _brackets(raw) > MAX_DEPTH:
        _check_depth(body, "the body")
    return stream, wants_usage


def _brackets(text: bytes) -> int:
    # An upper bound of the nesting depth (brackets inside strings count too), at C speed.
    return text.count(b"[") + text.count(b"{")


def _check_depth(value: Any, what: str, field: str = "") -> None:
    wrapped: Any = value
    for _ in range(ORJSON_MAX_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except TypeError:  # orjson's JSONEncodeError: a parsed JSON value can only be too deep
        raise InvalidRequest(
            field, f"{what} is nested more than {MAX_DEPTH} levels deep", "nested_too_deep"
        ) from None


def json_arguments(value: Any, field: str) -> None:
    """Tool call arguments: a JSON text that translating adapters parse and embed."""
    if not isinstance(value, str):
        return  # adapters refuse what is not a JSON object text
    if value.count("[") + value.count("{") > MAX_DEPTH:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        _check_depth(parsed, "the JSON text", field)


# -- value checks ----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """The JSON type of a parsed value, as an error message names it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _wrong(field: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(field, f"must be {expected}, not {_kind(value)}")


def boolean(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise _wrong(field, "true or false", value)


def string(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise _wrong(field, "a string", value)


def number(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(field, "a number", value)


def obj(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise _wrong(field, "an object", value)


def integer(minimum: int) -> Check:
    def check_integer(value: Any, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(field, "an integer", value)
        if value < minimum:
            raise InvalidRequest(field, f"must be at least {minimum}, not {value}")

    return check_integer


def string_or_object(value: Any, field: str) -> None:
    if not isinstance(value, str | dict):
        raise _wrong(field, "a string or an object", value)


class ArrayCheck(Protocol):
    def __call__(self, value: Any, field: str, expected: str | None = None) -> None: ...


def array_of(kind: type, item: str) -> ArrayCheck:
    """The check of an array whose items are all ``kind`` (``item`` names one in errors)."""
    one = ("an " if item[0] in "aeiou" else "a ") + item

    def check_array(value: Any, field: str, expected: str | None = None) -> None:
        if not isinstance(value, list):
            raise _wrong(field, expected or f"an array of {item}s", value)
        for i, element in enumerate(value):
            if not isinstance(element, kind):
                raise _wrong(f"{field}[{i}]", one, element)

    return check_array


def string_or(array: ArrayCheck, item: str) -> Check:
    """A string, or an array checked by ``array``."""
    expected = f"a string or an array of {item}s"

    def check_string_or_array(value: Any, field: str) -> None:
        if not isinstance(value, str):
            array(value, field, expected)

    return check_string_or_array


strings = array_of(str, "string")
objects = array_of(dict, "object")
string_or_strings = string_or(strings, "string")
string_or_objects = string_or(objects, "object")


def stream_options(value: Any, field: str) -> None:
    obj(value, field)
    include = value.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise _wrong(f"{field}.include_usage", "true or false", include)


def tools(value: Any, field: str) -> None:
    objects(value, field)
    for i, tool in enumerate(value):
        function = tool.get("function")
        if function is not None and not isinstance(function, dict):
            raise _wrong(f"{field}[{i}].function", "an object", function)


def _messages(value: Any, field: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The messages of a non-empty ``messages`` array, each an object with a string role."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest(field, f"must be a non-empty array of messages, not {_kind(value)}")
    # This runs for every message of every call: field names are built only for an error.
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _wrong(f"{field}[{i}]", "a message object", message)
        role = message.get("role")
        if not isinstance(role, str):
            raise _wrong(f"{field}[{i}].role", "a string", role)
        yield i, message


def chat_messages(value: Any, field: str) -> None:
    # The common shapes (string content, no tool calls) cost a few lookups.
    for i, message in _messages(value, field):
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            string_or_objects(content, f"{field}[{i}].content")
        calls = message.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise _wrong(f"{field}[{i}].tool_calls", "an array of objects", calls)
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    _tool_calls(calls, f"{field}[{i}].tool_calls")  # raises, naming the call
                arguments = function.get("arguments")  # type: ignore[union-attr]
                if isinstance(arguments, str) and len(arguments) > MAX_DEPTH:
                    _tool_calls(calls, f"{field}[{i}].tool_calls")
        call_id = message.get("tool_call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise _wrong(f"{field}[{i}].tool_call_id", "a string", call_id)


def _tool_calls(calls: list[Any], field: str) -> None:
    """The full check of a message's tool calls (the error path and long arguments)."""
    objects(calls, field)
    for j, call in enumerate(calls):
        function = call.get("function")
        if not isinstance(function, dict):
            raise _wrong(f"{field}[{j}].function", "an object", function)
        arguments = function.get("arguments")
        if arguments is not None:
            json_arguments(arguments, f"{field}[{j}].function.arguments")


def anthropic_messages(value: Any, field: str) -> None:
    for i, message in _messages(value, field):
        content = message.get("content")
        if not isinstance(content, str):
            if content is None:
                raise InvalidRequest(f"{field}[{i}].content", "is required")
            string_or_objects(content, f"{field}[{i}].content")


def embedding_input(value: Any, field: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            field, f"must be a string or a non-empty array of strings, not {_kind(value)}"
        )
    for i, item in enumerate(value):
        if isinstance(item, list):  # token ids
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in item):
                raise _wrong(f"{field}[{i}]", "an array of integers (token ids)", item)
        elif not isinstance(item, str) and (isinstance(item, bool) or not isinstance(item, int)):
            raise _wrong(f"{field}[{i}]", "a string", item)


def prompt(value: Any, field: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _wrong(field, "a string or an array of strings", value)
    for i, item in enumerate(value):
        if not isinstance(item, str | int | list) or isinstance(item, bool):
            raise _wrong(f"{field}[{i}]", "a string", item)


def responses_input(value: Any, field: str) -> None:
    if not isinstance(value, str):
        if not isinstance(value, list):
            raise _wrong(field, "a string or an array of input items", value)
        objects(value, field)
        for i, item in enumerate(value):
            arguments = item.get("arguments")
            if arguments is not None:
                json_arguments(arguments, f"{field}[{i}].arguments")


# -- what each operation's body may hold -----------------------------------------------------

TOKENS = integer(0)
COUNT = integer(1)
SAMPLING: dict[str, Check] = {
    "temperature": number,
    "top_p": number,
    "presence_penalty": number,
    "frequency_penalty": number,
    "seed": integer(-(2**63)),
}
STREAMING: dict[str, Check] = {"stream": boolean, "stream_options": stream_options}

FIELDS: dict[Operation, dict[str, Check]] = {
    Operation.CHAT: {
        **SAMPLING,
        **STREAMING,
        "messages": chat_messages,
        "max_tokens": TOKENS,
        "max_completion_tokens": TOKENS,
        "n": COUNT,
        "stop": string_or_strings,
        "tools": tools,
        "tool_choice": string_or_object,
        "parallel_tool_calls": boolean,
        "response_format": obj,
        "logprobs": boolean,
        "top_logprobs": TOKENS,
        "logit_bias": obj,
        "modalities": strings,
        "metadata": obj,
        "user": string,
    },
    Operation.COMPLETIONS: {
        **SAMPLING,
        **STREAMING,
        "prompt": prompt,
        "max_tokens": TOKENS,
        "n": COUNT,
        "best_of": COUNT,
        "stop": string_or_strings,
        "echo": boolean,
        "suffix": string,
        "logprobs": TOKENS,
        "logit_bias": obj,
        "user": string,
    },
    Operation.EMBEDDINGS: {
        "input": embedding_input,
        "dimensions": COUNT,
        "encoding_format": string,
        "stream": boolean,
        "user": string,
    },
    Operation.RESPONSES: {
        **STREAMING,
        "input": responses_input,
        "instructions": string,
        "max_output_tokens": TOKENS,
        "tools": objects,
        "tool_choice": string_or_object,
        "parallel_tool_calls": boolean,
        "previous_response_id": string,
        "store": boolean,
        "text": obj,
        "reasoning": obj,
        "metadata": obj,
        "include": strings,
        "temperature": number,
        "top_p": number,
        "user": string,
    },
    Operation.MESSAGES: {
        "stream": boolean,
        "messages": anthropic_messages,
        "system": string_or_objects,
        "max_tokens": TOKENS,
        "stop_sequences": strings,
        "tools": objects,
        "tool_choice": obj,
        "metadata": obj,
        "thinking": obj,
        "temperature": number,
        "top_p": number,
        "top_k": TOKENS,
    },
}

# Anthropic's count_tokens takes a Messages body (without the sampling fields).
FIELDS[Operation.COUNT_TOKENS] = FIELDS[Operation.MESSAGES]

REQUIRED: dict[Operation, tuple[str, ...]] = {
    Operation.CHAT: ("messages",),
    Operation.EMBEDDINGS: ("input",),
    Operation.COMPLETIONS: ("prompt",),
    Operation.MESSAGES: ("messages",),
    Operation.COUNT_TOKENS: ("messages",),
}
