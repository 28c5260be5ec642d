"""The OpenAI Agents SDK: its default model (``OpenAIResponsesModel``, the Responses API) on
an ``AsyncOpenAI`` client pointed at the sidecar, with a function tool and an output type."""

from __future__ import annotations

import asyncio
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.compat._common import QUESTION, Weather, get_weather, weather
from tests.compat._stack import Stack
from tests.compat.conftest import cell

set_tracing_disabled(True)
weather_tool = function_tool(get_weather)


async def run(stack: Stack, fmt: str, stream: bool, **agent: Any) -> tuple[Any, list[str]]:
    """(final output, the run's new items' types)."""
    async with AsyncOpenAI(base_url=stack.base_url, api_key="x", max_retries=0) as client:
        model = OpenAIResponsesModel(model=fmt, openai_client=client)
        assistant = Agent(name="assistant", model=model, instructions="Be brief.", **agent)
        if not stream:
            result = await Runner.run(assistant, QUESTION)
            return result.final_output, [item.type for item in result.new_items]
        streamed = Runner.run_streamed(assistant, QUESTION)
        deltas = []
        async for event in streamed.stream_events():
            if (
                event.type == "raw_response_event"
                and event.data.type == "response.output_text.delta"
            ):
                deltas.append(event.data.delta)
        assert deltas  # the answer did stream
        return streamed.final_output, [item.type for item in streamed.new_items]


@cell("OpenAI Agents SDK (Responses API)", ["text", "tools", "structured"])
def test_agents(stack: Stack, fmt: str, feature: str, stream: bool) -> None:
    reply = stack.reply(fmt)
    if feature == "text":
        output, items = asyncio.run(run(stack, fmt, stream))
        assert (output, items) == (reply, ["message_output_item"])
    elif feature == "tools":
        output, items = asyncio.run(run(stack, fmt, stream, tools=[weather_tool]))
        assert items == ["tool_call_item", "tool_call_output_item", "message_output_item"]
        assert output == reply
    else:
        output, _ = asyncio.run(run(stack, fmt, stream, output_type=Weather))
        assert output == weather(reply)
