"""LangChain: ChatOpenAI (chat completions and Responses API), ChatAnthropic, OpenAIEmbeddings."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.compat._common import (
    JSON_PROMPT,
    QUESTION,
    UNSUPPORTED,
    Weather,
    get_weather,
    last,
    weather,
)
from tests.compat._stack import Stack
from tests.compat.conftest import cell, not_applicable


def text_of(message: BaseMessage) -> str:
    return message.text if isinstance(message.text, str) else message.text()  # type: ignore[operator]


def aggregate(chunks: Any) -> Any:
    out = None
    for chunk in chunks:
        out = chunk if out is None else out + chunk
    return out


def check(model: Any, stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    reply = stack.reply(fmt)
    if feature == "text":
        message = aggregate(model.stream(QUESTION)) if stream else model.invoke(QUESTION)
        assert text_of(message) == reply
        assert message.usage_metadata["output_tokens"] > 0
    elif feature == "tools":
        bound = model.bind_tools([get_weather])
        call = aggregate(bound.stream(QUESTION)) if stream else bound.invoke(QUESTION)
        assert [(c["name"], c["args"]) for c in call.tool_calls] == [
            ("get_weather", {"city": reply})
        ]
        # The tool's result goes back, and the model answers with it.
        result = ToolMessage(get_weather(reply), tool_call_id=call.tool_calls[0]["id"])
        answer = bound.invoke([("user", QUESTION), call, result])
        assert text_of(answer) == reply
    else:
        method = {"structured": None, "json-mode": "json_mode"}[feature]
        kwargs = {"method": method} if method else {}
        structured = model.with_structured_output(Weather, **kwargs)
        prompt = JSON_PROMPT if method == "json_mode" else QUESTION
        value = last(structured.stream(prompt)) if stream else structured.invoke(prompt)
        assert Weather.model_validate(value) == weather(reply)


@cell("LangChain ChatOpenAI", ["text", "tools", "structured", "json-mode"])
def test_chat_openai(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    model = ChatOpenAI(
        model=fmt,
        base_url=stack.base_url,
        api_key="x",
        max_retries=0,
        stream_usage=True,  # type: ignore[arg-type]
    )
    check(model, stack, fmt, feature, stream)


@cell("LangChain ChatOpenAI (Responses API)", ["text", "tools", "structured"])
def test_chat_openai_responses(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    model = ChatOpenAI(
        model=fmt,
        base_url=stack.base_url,
        api_key="x",  # type: ignore[arg-type]
        max_retries=0,
        use_responses_api=True,
    )
    check(model, stack, fmt, feature, stream)


@cell("LangChain ChatAnthropic", ["text", "tools", "structured"])
def test_chat_anthropic(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    model = ChatAnthropic(
        model=fmt,  # type: ignore[call-arg]
        base_url=stack.url,
        api_key="x",  # type: ignore[arg-type]
        max_retries=0,
        max_tokens=512,  # type: ignore[call-arg]
    )
    check(model, stack, fmt, feature, stream)


@cell("LangChain OpenAIEmbeddings", ["embeddings"], streams=False)
def test_openai_embeddings(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    embeddings = OpenAIEmbeddings(
        model=fmt,
        base_url=stack.base_url,
        api_key="x",  # type: ignore[arg-type]
        max_retries=0,
        check_embedding_ctx_length=False,  # its tokenizer would be downloaded
    )
    if fmt in ("anthropic", "bedrock"):
        # The client is told once, with a 400, never a retryable 5xx.
        with pytest.raises(openai.BadRequestError) as info:
            embeddings.embed_query("hello")
        assert info.value.code == "unsupported_operation"
        not_applicable(UNSUPPORTED[fmt]["embeddings"])
    vectors = embeddings.embed_documents(["hello", "world"])
    assert len(vectors) == 2
    assert len(vectors[0]) > 0
