"""The Azure OpenAI adapter (adapters/azure_openai.py) through a real sidecar.

The reference for the wire format is the official ``openai.AsyncAzureOpenAI`` client: the
sidecar must send what it sends (deployment path, ``api-version`` query, ``api-key``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.devtools.simulators.azure import AzureOpenAISimulator
from aiguillage.sidecar.config import Provider, Route, Target
from tests.sidecar.adapters._sidecar import route, running_sidecar

KEY = "azure-key-0001"
DEPLOYMENT = "gpt4o-eu"
VERSION = "2024-10-21"
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
HELLO = "Hello from azure-sim! This is a simulated answer."


def provider(sim: AzureOpenAISimulator, **options: str) -> Provider:
    return Provider(
        api="azure-openai", endpoint=sim.url, location="SE", credential="azure", options=options
    )


@pytest.fixture
async def sim() -> AsyncIterator[AzureOpenAISimulator]:
    simulator = AzureOpenAISimulator(
        "azure-sim",
        api_key=KEY,
        deployments={DEPLOYMENT: "gpt-4o", "embed-eu": "text-embedding-3-small"},
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: AzureOpenAISimulator, tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    routes = [
        route("chat", Target(provider="azure", model=DEPLOYMENT)),
        route("embed", Target(provider="azure", model="embed-eu")),
    ]
    async with running_sidecar(tmp_path, {"azure": provider(sim)}, routes, {"azure": KEY}) as c:
        yield c


async def test_chat_sends_what_the_official_azure_client_sends(
    client: openai.AsyncOpenAI, sim: AzureOpenAISimulator
) -> None:
    reference = openai.AsyncAzureOpenAI(
        azure_endpoint=sim.url, api_key=KEY, api_version=VERSION, max_retries=0
    )
    await reference.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
    await reference.close()
    expected = sim.last_request

    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)

    seen = sim.last_request
    assert completion.choices[0].message.content == HELLO
    assert completion.model == "gpt-4o"  # the deployment serves gpt-4o
    assert seen.path == expected.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert seen.query == expected.query == {"api-version": VERSION}
    assert seen.headers["api-key"] == expected.headers["api-key"] == KEY
    assert "authorization" not in seen.headers
    assert seen.body["messages"] == MESSAGES


async def test_stream_is_openai_shaped_without_azures_filter_chunk_and_annotations(
    sim: AzureOpenAISimulator, tmp_path: Path
) -> None:
    routes = [route("chat", Target(provider="azure", model=DEPLOYMENT))]
    async with running_sidecar(tmp_path, {"azure": provider(sim)}, routes, {"azure": KEY}) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        body = await raw.http_response.aread()

    frames = [f for f in body.decode().split("\n\n") if f.strip()]
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    # Azure's leading chunk (empty id, model and object, only prompt_filter_results) is gone:
    # every chunk is a chat.completion.chunk naming the model, as strict parsers require.
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o" for c in chunks)
    assert all(c["id"] for c in chunks)
    assert not any("prompt_filter_results" in c for c in chunks)
    assert not any("content_filter_results" in ch for c in chunks for ch in c["choices"])
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == HELLO
    )
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 8


async def test_whole_answer_has_no_azure_filter_annotations(
    client: openai.AsyncOpenAI,
) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    body = json.loads(await raw.http_response.aread())

    assert "prompt_filter_results" not in body
    assert "content_filter_results" not in body["choices"][0]
    assert body["choices"][0]["message"]["content"] == HELLO


async def test_tool_calls(client: openai.AsyncOpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES, tools=tools)

    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index,union-attr]


async def test_embeddings_and_api_version_option(sim: AzureOpenAISimulator, tmp_path: Path) -> None:
    routes = [route("embed", Target(provider="azure", model="embed-eu"))]
    providers = {"azure": provider(sim, apiVersion="2025-01-01-preview")}
    async with running_sidecar(tmp_path, providers, routes, {"azure": KEY}) as client:
        result = await client.embeddings.create(model="embed", input="hello there")

    assert len(result.data[0].embedding) > 0
    assert sim.last_request.path == "/openai/deployments/embed-eu/embeddings"
    assert sim.last_request.query == {"api-version": "2025-01-01-preview"}


async def test_content_filter_400_is_relayed_not_failed_over(
    sim: AzureOpenAISimulator, tmp_path: Path
) -> None:
    backup = AzureOpenAISimulator("azure-backup", api_key=KEY)
    await backup.start()
    try:
        providers = {"azure": provider(sim), "backup": provider(backup)}
        chat: Route = route(
            "chat",
            Target(provider="azure", model=DEPLOYMENT, priority=0),
            Target(provider="backup", model=DEPLOYMENT, priority=1),
        )
        sim.set_faults([{"kind": "status", "status": 400, "error_code": "content_filter"}])
        async with running_sidecar(tmp_path, providers, [chat], {"azure": KEY}) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
    finally:
        await backup.stop()

    assert info.value.code == "content_filter"
    assert info.value.response.headers["x-aiguillage-provider"] == "azure"
    assert len(sim.requests) == 1
    assert backup.requests == []
