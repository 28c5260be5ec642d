"""Both official SDKs, sync, async and streaming, against every provider adapter.

Each row starts the simulator of one wire format and a sidecar whose route ``chat`` targets
it; the OpenAI and Anthropic clients must both get the provider's answer, with usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators import (
    AnthropicSimulator,
    AzureOpenAISimulator,
    BedrockSimulator,
    GeminiSimulator,
    OpenAISimulator,
)
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.config import Provider, SidecarConfig, Target
from tests.sidecar.conftest import RunningSidecar, StartSidecar, route

AWS = json.dumps({"accessKeyId": "AKIDMATRIX", "secretAccessKey": "matrix-secret"})


@dataclass(frozen=True)
class Row:
    simulator: Callable[[], Simulator]
    provider: Callable[[str], Provider]
    credential: str
    model: str


ROWS = {
    "openai": Row(
        lambda: OpenAISimulator("sim-openai", api_key="k-openai"),
        lambda url: Provider(api="openai", endpoint=url + "/v1", credential="p"),
        "k-openai",
        "gpt-4o-mini",
    ),
    "azure-openai": Row(
        lambda: AzureOpenAISimulator("sim-azure", api_key="k-azure"),
        lambda url: Provider(
            api="azure-openai", endpoint=url, credential="p", options={"apiVersion": "2024-10-21"}
        ),
        "k-azure",
        "gpt-4o-mini-deployment",
    ),
    "anthropic": Row(
        lambda: AnthropicSimulator("sim-anthropic", api_key="k-anthropic"),
        lambda url: Provider(api="anthropic", endpoint=url, credential="p"),
        "k-anthropic",
        "claude-sonnet-4-5",
    ),
    "gemini": Row(
        lambda: GeminiSimulator("sim-gemini", api_key="k-gemini"),
        lambda url: Provider(api="gemini", endpoint=url + "/v1beta", credential="p"),
        "k-gemini",
        "gemini-2.5-flash",
    ),
    "vertex-ai": Row(
        lambda: GeminiSimulator("sim-vertex", api_key="k-vertex"),
        lambda url: Provider(
            api="vertex-ai",
            endpoint=url,
            credential="p",
            options={"project": "proj", "location": "europe-west4"},
        ),
        "k-vertex",
        "gemini-2.5-flash",
    ),
    "bedrock": Row(
        lambda: BedrockSimulator(
            "sim-bedrock", api_key="AKIDMATRIX", secret_key="matrix-secret", region="eu-central-1"
        ),
        lambda url: Provider(
            api="bedrock", endpoint=url, credential="p", options={"region": "eu-central-1"}
        ),
        AWS,
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
}


@pytest.fixture(params=sorted(ROWS))
def served(
    request: pytest.FixtureRequest, lt: LoopThread, start_sidecar: StartSidecar
) -> Iterator[tuple[RunningSidecar, Simulator]]:
    row = ROWS[request.param]
    sim = row.simulator()
    lt.run(sim.start())
    config = SidecarConfig(
        namespace="matrix",
        providers={"p": row.provider(sim.url)},
        routes={"chat": route("chat", Target(provider="p", model=row.model))},
    )
    try:
        yield start_sidecar(config, {"p": row.credential}), sim
    finally:
        lt.run(sim.stop())


MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]


def test_openai_sync(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    answer = sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert sim.name in (answer.choices[0].message.content or "")
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


def test_openai_async(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served

    async def ask() -> str:
        async with openai.AsyncOpenAI(base_url=sidecar.url + "/v1", api_key="x") as client:
            answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
            return answer.choices[0].message.content or ""

    assert sim.name in asyncio.run(ask())


def test_openai_stream(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    stream = sidecar.client().chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert sim.name in text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def anthropic_client(sidecar: RunningSidecar) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sidecar.url, api_key="x", max_retries=0)


def test_anthropic_sync(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    message = anthropic_client(sidecar).messages.create(
        model="chat", max_tokens=256, messages=MESSAGES
    )
    assert sim.name in "".join(b.text for b in message.content if b.type == "text")
    assert message.usage.output_tokens > 0


def test_anthropic_async(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served

    async def ask() -> str:
        client = anthropic.AsyncAnthropic(base_url=sidecar.url, api_key="x", max_retries=0)
        async with client:
            message = await client.messages.create(model="chat", max_tokens=256, messages=MESSAGES)
            return "".join(b.text for b in message.content if b.type == "text")

    assert sim.name in asyncio.run(ask())


def test_anthropic_stream(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    with anthropic_client(sidecar).messages.stream(
        model="chat", max_tokens=256, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert sim.name in text
    assert final.usage.output_tokens > 0
