"""instructor: structured output through its OpenAI modes (tools, JSON mode, markdown JSON,
JSON schema) and its Anthropic modes (tools, JSON), whole and streamed (``create_partial``)."""

from __future__ import annotations

from typing import Any

import anthropic
import instructor
import openai

from tests.compat._common import QUESTION, Weather, last, weather
from tests.compat._stack import Stack
from tests.compat.conftest import cell

OPENAI_MODES = {
    "tools": instructor.Mode.TOOLS,
    "json-mode": instructor.Mode.JSON,
    "markdown-json": instructor.Mode.MD_JSON,
    "json-schema": instructor.Mode.JSON_SCHEMA,
}
ANTHROPIC_MODES = {"tools": instructor.Mode.ANTHROPIC_TOOLS, "json": instructor.Mode.ANTHROPIC_JSON}


@cell("instructor from_openai", list(OPENAI_MODES))
def test_from_openai(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    client = instructor.from_openai(
        openai.OpenAI(base_url=stack.base_url, api_key="x", max_retries=0),
        mode=OPENAI_MODES[feature],
    )
    ask: dict[str, Any] = {
        "model": fmt,
        "response_model": Weather,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_retries": 0,
    }
    create = client.chat.completions
    value = last(create.create_partial(**ask)) if stream else create.create(**ask)
    assert Weather.model_validate(value.model_dump()) == weather(stack.reply(fmt))


@cell("instructor from_anthropic", list(ANTHROPIC_MODES))
def test_from_anthropic(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    client = instructor.from_anthropic(
        anthropic.Anthropic(base_url=stack.url, api_key="x", max_retries=0),
        mode=ANTHROPIC_MODES[feature],
    )
    ask: dict[str, Any] = {
        "model": fmt,
        "max_tokens": 512,
        "response_model": Weather,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_retries": 0,
    }
    value = last(client.messages.create_partial(**ask)) if stream else client.messages.create(**ask)
    assert Weather.model_validate(value.model_dump()) == weather(stack.reply(fmt))
