"""Simulated AI providers speaking each provider's wire format, with faults on demand.

Used by the integration tests (the sidecar under test forwards to them) and by ``make dev`` as
the "EU" and "US" providers. One module per wire schema:

* :mod:`.openai`: OpenAI and OpenAI-compatible APIs (Mistral, Scaleway, OVHcloud, vLLM...);
* :mod:`.azure`: Azure OpenAI (deployment paths, ``api-key``, content-filter fields);
* :mod:`.anthropic`: Anthropic Messages;
* :mod:`.gemini`: Gemini API and Vertex AI ``generateContent``;
* :mod:`.bedrock`: Bedrock Runtime Converse (binary event stream, SigV4);

and the shared machinery: :mod:`.base` (the :class:`Simulator` base class, which ties the rest
together), :mod:`.faults` (fault kinds and plan), :mod:`.recording` (request log), :mod:`.admin`
(admin API under ``/_sim/``), :mod:`.answers` (deterministic replies) and :mod:`.streaming`
(writing and breaking answers); :mod:`.eventstream` and :mod:`.sigv4` serve :mod:`.bedrock`.
Run one from the shell with ``python -m aiguillage.devtools.simulators --kind openai``.
"""

from __future__ import annotations

from .answers import Answer
from .anthropic import AnthropicSimulator
from .azure import AzureOpenAISimulator
from .base import Call, Simulator
from .bedrock import BedrockSimulator
from .faults import FAULT_KINDS, ApiError, Fault, FaultPlan
from .gemini import GeminiSimulator
from .openai import OpenAISimulator
from .recording import RecordedRequest

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
