"""Wire shapes as the official SDKs define them, to check what the sidecar writes.

Request bodies are validated against the SDKs' own parameter types (TypedDicts), with every
nested list consumed so that each item is validated too. Keys the SDK does not know are
dropped by that validation, so comparing the result with the body also catches misspelt or
invented fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic.types
import openai.types.chat
import openai.types.shared
import orjson
import pydantic
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

# Kept alive: pydantic validates nested iterables lazily, with the adapter's definitions.
_ANTHROPIC_REQUEST = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
_OPENAI_REQUEST = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
_ANTHROPIC_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
    anthropic.types.RawMessageStreamEvent
)


def _consumed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _consumed(v) for k, v in value.items()}
    if value is None or isinstance(value, str | bytes | int | float | bool):
        return value
    return [_consumed(v) for v in value]


def anthropic_request(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the anthropic SDK's Messages parameters read it (stream flag aside)."""
    plain = {k: v for k, v in body.items() if k != "stream"}
    return _consumed(_ANTHROPIC_REQUEST.validate_python(plain))  # type: ignore[no-any-return]


def openai_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the openai SDK's chat.completions parameters read it (stream flag aside)."""
    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return _consumed(_OPENAI_REQUEST.validate_python(plain))  # type: ignore[no-any-return]


def anthropic_message(raw: bytes) -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(orjson.loads(raw))


def anthropic_events(raw: bytes) -> list[Any]:
    """The named SSE events of an Anthropic stream, each validated by the SDK's event type.

    Also checks that each event's name matches its ``type``, as the API's events do.
    """
    events = []
    for frame in raw.split(b"\n\n"):
        if not frame.strip():
            continue
        lines = frame.split(b"\n")
        assert lines[0].startswith(b"event: "), frame
        assert len(lines) == 2, frame
        assert lines[1].startswith(b"data: "), frame
        name, data = lines[0][7:].decode(), orjson.loads(lines[1][6:])
        assert data["type"] == name
        events.append(_ANTHROPIC_EVENT.validate_python(data))
    return events


def openai_completion(raw: bytes) -> openai.types.chat.ChatCompletion:
    return openai.types.chat.ChatCompletion.model_validate(orjson.loads(raw))


def openai_chunks(raw: bytes) -> list[openai.types.chat.ChatCompletionChunk]:
    """The ``data:`` chunks of an OpenAI stream up to ``[DONE]`` (which must end it)."""
    frames = [f for f in raw.split(b"\n\n") if f.strip()]
    assert frames[-1] == b"data: [DONE]"
    return [
        openai.types.chat.ChatCompletionChunk.model_validate(orjson.loads(f[6:]))
        for f in frames[:-1]
    ]


def openai_error(raw: bytes) -> openai.types.shared.ErrorObject:
    """An OpenAI error body ``{"error": {...}}``, checked with the SDK's ErrorObject type."""
    parsed = orjson.loads(raw)
    assert set(parsed) == {"error"}, parsed
    error = openai.types.shared.ErrorObject.model_validate(parsed["error"])
    assert error.message
    assert error.type
    return error


def anthropic_error(raw: bytes) -> anthropic.types.ErrorResponse:
    """An Anthropic error body, checked with the SDK's ErrorResponse type."""
    error = anthropic.types.ErrorResponse.model_validate(orjson.loads(raw))
    assert error.error.message
    return error
