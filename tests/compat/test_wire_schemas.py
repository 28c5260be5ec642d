"""The sidecar's answers against the published schemas (see :mod:`._schemas`), on every format.

Whole answers, every stream chunk or event, model listings and error bodies are checked as the
client receives them from the sidecar, raw (no SDK in between to smooth anything over).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import httpx
import pytest

from tests.compat._common import QUESTION, UNSUPPORTED, WEATHER_TOOL
from tests.compat._schemas import anthropic_strict, check_openai
from tests.compat._stack import Stack
from tests.compat.conftest import cell, not_applicable

ASK: list[Any] = [{"role": "user", "content": QUESTION}]
RESPONSES_TOOL = {"type": "function", **WEATHER_TOOL["function"]}
ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}
EMBEDDINGS = {"openai", "azure-openai", "gemini", "vertex-ai"}
COMPLETIONS = {"openai", "azure-openai"}


def post(stack: Stack, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(stack.url + path, json=body, headers=headers)


def events(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of each SSE event; ``[DONE]`` as ``None`` data."""
    out = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        name, data = None, []
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        text = "\n".join(data)
        out.append((name, None if text == "[DONE]" else json.loads(text)))
    return out


@cell("OpenAI OpenAPI spec", ["embeddings"], streams=False)
def test_openai_embeddings(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    response = post(stack, "/v1/embeddings", {"model": fmt, "input": ["a", "b"]})
    if fmt not in EMBEDDINGS:
        assert response.status_code == 400
        check_openai("ErrorResponse", response.json())
        not_applicable(UNSUPPORTED[fmt]["embeddings"])
    assert response.status_code == 200, response.text
    check_openai("CreateEmbeddingResponse", response.json())


@cell("OpenAI OpenAPI spec", ["chat", "chat-tools", "completions"])
def test_openai_operations(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    if feature == "completions":
        body: dict[str, Any] = {"model": fmt, "prompt": QUESTION, "stream": stream}
        response = post(stack, "/v1/completions", body)
        if fmt not in COMPLETIONS:
            assert response.status_code == 400
            check_openai("ErrorResponse", response.json())
            not_applicable(UNSUPPORTED[fmt]["completions"])
        assert response.status_code == 200, response.text
        if not stream:
            check_openai("CreateCompletionResponse", response.json())
        for _, data in events(response) if stream else ():
            if data is not None:
                check_openai("CreateCompletionResponse", data)
        return
    body = {"model": fmt, "messages": ASK, "stream": stream}
    if feature == "chat-tools":
        body["tools"] = [WEATHER_TOOL]
    if stream:
        body["stream_options"] = {"include_usage": True}
    response = post(stack, "/v1/chat/completions", body)
    assert response.status_code == 200, response.text
    if not stream:
        check_openai("CreateChatCompletionResponse", response.json())
        return
    chunks = events(response)
    assert chunks[-1] == (None, None)  # [DONE]
    for _, data in chunks[:-1]:
        check_openai("CreateChatCompletionStreamResponse", data)


@cell("OpenAI OpenAPI spec", ["responses", "responses-tools"])
def test_openai_responses(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    body: dict[str, Any] = {"model": fmt, "input": QUESTION, "stream": stream}
    if feature == "responses-tools":
        body["tools"] = [RESPONSES_TOOL]
    response = post(stack, "/v1/responses", body)
    assert response.status_code == 200, response.text
    if not stream:
        check_openai("Response", response.json())
        return
    parsed = events(response)
    assert parsed[-1][0] == "response.completed"
    for name, data in parsed:
        assert name == data["type"]
        check_openai("ResponseStreamEvent", data)


@cell("OpenAI OpenAPI spec", ["models", "errors"], streams=False)
def test_openai_models_and_errors(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        if feature == "models":
            listed = client.get("/v1/models")
            check_openai("ListModelsResponse", listed.json())
            one = client.get(f"/v1/models/{fmt}")
            assert one.status_code == 200
            check_openai("Model", one.json())
            return
        errors = [
            client.post("/v1/chat/completions", json={"model": "no-such-route", "messages": ASK}),
            client.post("/v1/chat/completions", content=b"{not json"),
            client.get(f"/v1/models/{fmt}-unknown"),
            client.post("/v1/assistants", json={}),
            client.post(
                "/v1/chat/completions",  # something the format cannot express (n > 1 or logprobs)
                json={"model": fmt, "messages": ASK, "logit_bias": {"42": 1}, "n": 2},
            ),
        ]
    for error in errors:
        if error.status_code == 200:
            continue  # the last one passes through to OpenAI-speaking providers
        check_openai("ErrorResponse", error.json())


@cell("Anthropic SDK types", ["messages", "messages-tools"])
def test_anthropic_messages(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    body: dict[str, Any] = {"model": fmt, "max_tokens": 256, "messages": ASK, "stream": stream}
    if feature == "messages-tools":
        body["tools"] = [ANTHROPIC_TOOL]
    response = post(stack, "/v1/messages", body, **{"anthropic-version": "2023-06-01"})
    assert response.status_code == 200, response.text
    if not stream:
        message = anthropic_strict(anthropic.types.Message, response.json())
        assert message.usage.output_tokens > 0
        return
    parsed = events(response)
    assert [name for name, _ in parsed][-1] == "message_stop"
    for name, data in parsed:
        assert name == data["type"]
        if name != "ping":  # documented keep-alive; the SDK reads and drops it
            anthropic_strict(anthropic.types.RawMessageStreamEvent, data)


@cell("Anthropic SDK types", ["count-tokens", "errors"], streams=False)
def test_anthropic_count_tokens_and_errors(
    stack: Stack, fmt: str, feature: str, stream: bool
) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    if feature == "count-tokens":
        response = post(
            stack, "/v1/messages/count_tokens", {"model": fmt, "messages": ASK}, **headers
        )
        assert response.status_code == 200, response.text
        counted = anthropic_strict(anthropic.types.MessageTokensCount, response.json())
        assert counted.input_tokens > 0
        return
    errors = [
        post(
            stack,
            "/v1/messages",
            {"model": "no-such-route", "max_tokens": 8, "messages": ASK},
            **headers,
        ),
        post(stack, "/v1/messages/batches", {}, **headers),
        post(stack, "/v1/messages", {"model": fmt, "max_tokens": 8, "messages": "hi"}, **headers),
    ]
    for error in errors:
        assert error.status_code >= 400
        anthropic_strict(anthropic.types.ErrorResponse, error.json())


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx would honour a proxy from the environment; the sidecar is on loopback.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
