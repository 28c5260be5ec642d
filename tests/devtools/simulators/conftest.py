"""Fixtures for the simulator tests: one started simulator of each kind, and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from aiguillage.devtools.simulators import (
    AnthropicSimulator,
    AzureOpenAISimulator,
    BedrockSimulator,
    GeminiSimulator,
    OpenAISimulator,
)

OPENAI_KEY = "sk-test-0123456789"
AZURE_KEY = "azure-key-0123"
ANTHROPIC_KEY = "sk-ant-test-0123"
GEMINI_KEY = "AIza-test-0123"
AWS_ACCESS_KEY = "AKIDSIMULATOR"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_REGION = "eu-central-1"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def openai_sim() -> AsyncIterator[OpenAISimulator]:
    async with OpenAISimulator("mistral-eu", api_key=OPENAI_KEY) as sim:
        yield sim


@pytest.fixture
async def azure_sim() -> AsyncIterator[AzureOpenAISimulator]:
    async with AzureOpenAISimulator(
        "azure-eu",
        api_key=AZURE_KEY,
        deployments={"chat-dep": "gpt-4o-2024-08-06", "embed-dep": "emb"},
    ) as sim:
        yield sim


@pytest.fixture
async def anthropic_sim() -> AsyncIterator[AnthropicSimulator]:
    async with AnthropicSimulator("claude-us", api_key=ANTHROPIC_KEY) as sim:
        yield sim


@pytest.fixture
async def gemini_sim() -> AsyncIterator[GeminiSimulator]:
    async with GeminiSimulator("gemini-eu", api_key=GEMINI_KEY) as sim:
        yield sim


@pytest.fixture
async def bedrock_sim() -> AsyncIterator[BedrockSimulator]:
    async with BedrockSimulator(
        "bedrock-eu", api_key=AWS_ACCESS_KEY, secret_key=AWS_SECRET_KEY, region=AWS_REGION
    ) as sim:
        yield sim
