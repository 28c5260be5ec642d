"""Simulated AI providers speaking each provider's wire format, with faults on demand.

Used by the integration tests (the sidecar under test forwards to them) and by ``make dev`` as
the "EU" and "US" providers. One module per wire schema:

* :mod:`.openai`: OpenAI and OpenAI-compatible APIs (Mistral, Scaleway, OVHcloud, vLLM...);
* :mod:`.azure`: Azure OpenAI (deployment paths, ``api-key``, content-filter fields);
* :mod:`.anthropic`: Anthropic Messages;
* :mod:`.gemini`: Gemini API and Vertex AI ``generateContent``;
* :mod:`.bedrock`: Bedrock Runtime Converse (binary event stream, SigV4);

and the shared machinery in :mod:`.base` (fault plan, request log, admin API under ``/_sim/``).
Run one from the shell with ``python -m aiguillage.devtools.simulators --kind openai``.
"""

from __future__ import annotations

from .anthropic import AnthropicSimulator
from .azure import AzureOpenAISimulator
from .base import FAULT_KINDS, Answer, ApiError, Call, Fault, FaultPlan, RecordedRequest, Simulator
from .bedrock import BedrockSimulator
from .gemini import GeminiSimulator
from .openai import OpenAISimulator

__all__ = [
    "FAULT_KINDS",
    "SIMULATORS",
    "Answer",
    "AnthropicSimulator",
    "ApiError",
    "AzureOpenAISimulator",
    "BedrockSimulator",
    "Call",
    "Fault",
    "FaultPlan",
    "GeminiSimulator",
    "OpenAISimulator",
    "RecordedRequest",
    "Simulator",
]

#: simulator class by ``--kind`` name
SIMULATORS: dict[str, type[Simulator]] = {
    "openai": OpenAISimulator,
    "azure": AzureOpenAISimulator,
    "anthropic": AnthropicSimulator,
    "gemini": GeminiSimulator,
    "bedrock": BedrockSimulator,
}
