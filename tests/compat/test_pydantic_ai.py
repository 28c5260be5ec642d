"""pydantic-ai: agents on ``OpenAIChatModel`` and ``AnthropicModel`` pointed at the sidecar."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from tests.compat._common import QUESTION, Weather, get_weather, weather
from tests.compat._stack import Stack
from tests.compat.conftest import cell


async def run(agent: Agent[Any, Any], stream: bool) -> tuple[Any, list[Any]]:
    """(output, message parts' kinds of the whole run)."""
    if not stream:
        result = await agent.run(QUESTION)
        return result.output, [p.part_kind for m in result.all_messages() for p in m.parts]
    async with agent.run_stream(QUESTION) as streamed:
        output = await streamed.get_output()
        return output, [p.part_kind for m in streamed.all_messages() for p in m.parts]


def check(model: Any, stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    reply = stack.reply(fmt)
    if feature == "text":
        output, _ = asyncio.run(run(Agent(model), stream))
        assert output == reply
    elif feature == "tools":
        output, kinds = asyncio.run(run(Agent(model, tools=[get_weather]), stream))
        # The model called the tool, got its result back, then answered.
        assert kinds == ["user-prompt", "tool-call", "tool-return", "text"]
        assert output == reply
    else:
        output, _ = asyncio.run(run(Agent(model, output_type=Weather), stream))
        assert output == weather(reply)


@cell("pydantic-ai OpenAIChatModel", ["text", "tools", "structured"])
def test_openai_model(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    model = OpenAIChatModel(fmt, provider=OpenAIProvider(base_url=stack.base_url, api_key="x"))
    check(model, stack, fmt, feature, stream)


@cell("pydantic-ai AnthropicModel", ["text", "tools", "structured"])
def test_anthropic_model(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    model = AnthropicModel(fmt, provider=AnthropicProvider(base_url=stack.url, api_key="x"))
    check(model, stack, fmt, feature, stream)
