"""Both official SDKs, sync, async and streaming, against every provider adapter.

Each row starts the simulator of one wire format and a sidecar whose route ``chat`` targets
it; the OpenAI and Anthropic clients must both get the provider's answer, with usage.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators import OpenAISimulator
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.config import SidecarConfig, Target
from tests.sidecar._formats import ROWS
from tests.sidecar.conftest import RunningSidecar, StartSidecar, provider_for, route

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


def served_model(sidecar: RunningSidecar) -> str:
    return str(sidecar.runtime.snapshot.config.routes["chat"].targets[0].model)


def test_answers_name_the_model_that_served_never_the_route(
    served: tuple[RunningSidecar, Simulator],
) -> None:
    """Every adapter's ``model`` is the one that answered (as OpenAI's ``gpt-4o`` answers
    ``gpt-4o-2024-08-06``): the simulators echo the model they are asked for, and Bedrock,
    whose answers carry no model, names the target's model id."""
    sidecar, _ = served
    model = served_model(sidecar)
    client = sidecar.client()
    whole = client.chat.completions.create(model="chat", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    message = anthropic_client(sidecar).messages.create(
        model="chat", max_tokens=64, messages=MESSAGES
    )

    assert whole.model == model
    assert {c.model for c in chunks} == {model}
    assert message.model == model


def test_after_a_failover_the_answer_names_the_target_that_served(
    lt: LoopThread, eu: OpenAISimulator, start_sidecar: StartSidecar
) -> None:
    row = ROWS["bedrock"]
    bedrock = row.simulator()
    lt.run(bedrock.start())
    try:
        providers = {
            "eu": provider_for(eu, location="FR", jurisdiction="FR"),
            "bedrock": row.provider(bedrock.url),
        }
        chat = route(
            "chat",
            Target(provider="eu", model="mistral-small-latest", priority=0),
            Target(provider="bedrock", model=row.model, priority=1),
        )
        config = SidecarConfig(namespace="matrix", providers=providers, routes={"chat": chat})
        sidecar = start_sidecar(config, {"p": row.credential})
        eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
        client = sidecar.client()
        whole = client.chat.completions.create(model="chat", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    finally:
        lt.run(bedrock.stop())

    assert whole.model == row.model
    assert {c.model for c in chunks} == {row.model}
