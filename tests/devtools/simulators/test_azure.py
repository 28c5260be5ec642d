"""The Azure OpenAI simulator, driven by ``openai.AzureOpenAI`` / ``AsyncAzureOpenAI``."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest

from aiguillage.devtools.simulators import AzureOpenAISimulator

from .conftest import AZURE_KEY

API_VERSION = "2024-10-21"


def client(sim: AzureOpenAISimulator, key: str = AZURE_KEY) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=sim.url, api_key=key, api_version=API_VERSION, max_retries=0
    )


async def test_sync_azure_client(azure_sim: AzureOpenAISimulator) -> None:
    def call() -> openai.types.chat.ChatCompletion:
        with openai.AzureOpenAI(
            azure_endpoint=azure_sim.url, api_key=AZURE_KEY, api_version=API_VERSION, max_retries=0
        ) as c:
            return c.chat.completions.create(
                model="chat-dep", messages=[{"role": "user", "content": "hi"}]
            )

    completion = await asyncio.to_thread(call)
    # the deployment name is not the model name
    assert completion.model == "gpt-4o-2024-08-06"
    assert (
        completion.choices[0].message.content == "Hello from azure-eu! This is a simulated answer."
    )
    extra = completion.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    request = azure_sim.last_request
    assert request.path == "/openai/deployments/chat-dep/chat/completions"
    assert request.query == {"api-version": API_VERSION}
    assert request.headers["api-key"] == AZURE_KEY


async def test_stream_starts_with_prompt_filter_chunk(azure_sim: AzureOpenAISimulator) -> None:
    stream = await client(azure_sim).chat.completions.create(
        model="chat-dep",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices == []
    assert (chunks[0].model_extra or {})["prompt_filter_results"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from azure-eu! This is a simulated answer."
    assert chunks[-1].usage is not None


async def test_embeddings(azure_sim: AzureOpenAISimulator) -> None:
    result = await client(azure_sim).embeddings.create(model="embed-dep", input="hello")
    assert len(result.data[0].embedding) == 8
    assert result.model == "emb"
    assert azure_sim.last_request.path == "/openai/deployments/embed-dep/embeddings"


async def test_v1_path_uses_model_as_deployment(azure_sim: AzureOpenAISimulator) -> None:
    c = openai.AsyncOpenAI(base_url=azure_sim.url + "/openai/v1", api_key=AZURE_KEY, max_retries=0)
    completion = await c.chat.completions.create(
        model="chat-dep", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == "gpt-4o-2024-08-06"
    assert azure_sim.last_request.headers["authorization"] == f"Bearer {AZURE_KEY}"


async def test_azure_errors(azure_sim: AzureOpenAISimulator, http: aiohttp.ClientSession) -> None:
    url = azure_sim.url + "/openai/deployments/chat-dep/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    headers = {"api-key": AZURE_KEY}
    async with http.post(url, json=body, headers=headers) as resp:  # no api-version
        assert resp.status == 404
        assert await resp.json() == {"error": {"code": "404", "message": "Resource not found"}}
    async with http.post(
        url.replace("chat-dep", "nope"),
        params={"api-version": API_VERSION},
        json=body,
        headers=headers,
    ) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "DeploymentNotFound"
    with pytest.raises(openai.AuthenticationError) as err:
        await client(azure_sim, key="wrong").chat.completions.create(
            model="chat-dep", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "401"
    assert "Access denied" in err.value.message

    azure_sim.set_faults([{"kind": "status", "status": 429, "retry_after": 2}])
    async with http.post(
        url, params={"api-version": API_VERSION}, json=body, headers=headers
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["retry-after-ms"] == "2000"
        assert (await resp.json())["error"]["code"] == "429"

    azure_sim.set_faults([{"kind": "status", "status": 400, "error_code": "content_filter"}])
    with pytest.raises(openai.BadRequestError) as filtered:
        await client(azure_sim).chat.completions.create(
            model="chat-dep", messages=[{"role": "user", "content": "hi"}]
        )
    assert filtered.value.code == "content_filter"
