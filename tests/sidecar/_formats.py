"""One simulated provider of each wire format, as a route ``chat`` of a sidecar serves it.

Shared by the tests that run the same client code against every provider format (the SDK
matrix, the Responses API, JSON mode...) through the ``served`` fixture of conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from aiguillage.devtools.simulators import (
    AnthropicSimulator,
    AzureOpenAISimulator,
    BedrockSimulator,
    GeminiSimulator,
    OpenAISimulator,
)
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.config import Provider

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
        lambda: AzureOpenAISimulator("sim-azure", api_key="k-azure-key"),
        lambda url: Provider(
            api="azure-openai", endpoint=url, credential="p", options={"apiVersion": "2024-10-21"}
        ),
        "k-azure-key",
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


def located(row: Row, url: str, location: str = "FR", jurisdiction: str = "FR") -> Provider:
    """The row's provider at ``url``, declared in ``location`` under ``jurisdiction``."""
    return row.provider(url).model_copy(update={"location": location, "jurisdiction": jurisdiction})
