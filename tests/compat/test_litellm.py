"""LiteLLM as a client library: ``litellm.completion`` pointed at the sidecar, with its
OpenAI provider (``openai/<route>``, ``api_base`` = the sidecar's /v1) and its Anthropic
provider (``anthropic/<route>``, ``api_base`` = the sidecar)."""

from __future__ import annotations

import json
from typing import Any

import litellm

from tests.compat._common import (
    JSON_PROMPT,
    QUESTION,
    WEATHER_TOOL,
    Weather,
    weather,
    weather_arguments,
)
from tests.compat._stack import Stack
from tests.compat.conftest import cell


def complete(stream: bool, **kwargs: Any) -> tuple[str, list[Any]]:
    """(text, tool calls as (name, arguments)) of one completion, streamed or not."""
    if not stream:
        message = litellm.completion(num_retries=0, **kwargs).choices[0].message
        calls = [
            (c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()
        ]
        return message.content or "", calls
    chunks = list(litellm.completion(num_retries=0, stream=True, **kwargs))
    message = litellm.stream_chunk_builder(chunks).choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or ()]
    return message.content or "", calls


def check(stack: Stack, fmt: str, feature: str, stream: bool, **client: Any) -> None:
    reply = stack.reply(fmt)
    ask: list[Any] = [{"role": "user", "content": QUESTION}]
    if feature == "text":
        assert complete(stream, messages=ask, **client) == (reply, [])
    elif feature == "tools":
        text, calls = complete(stream, messages=ask, tools=[WEATHER_TOOL], **client)
        assert calls == [("get_weather", weather_arguments(reply))]
    elif feature == "structured":
        text, _ = complete(stream, messages=ask, response_format=Weather, **client)
        assert Weather.model_validate_json(text) == weather(reply)
    else:  # json-mode
        asked: list[Any] = [{"role": "user", "content": JSON_PROMPT}]
        text, _ = complete(
            stream, messages=asked, response_format={"type": "json_object"}, **client
        )
        assert Weather.model_validate_json(text) == weather(reply)


@cell("LiteLLM completion (openai/)", ["text", "tools", "structured", "json-mode"])
def test_openai_provider(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    check(stack, fmt, feature, stream, model=f"openai/{fmt}", api_base=stack.base_url, api_key="x")


@cell("LiteLLM completion (anthropic/)", ["text", "tools", "structured"])
def test_anthropic_provider(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    check(
        stack,
        fmt,
        feature,
        stream,
        model=f"anthropic/{fmt}",
        api_base=stack.url,
        api_key="x",
        max_tokens=512,
    )
