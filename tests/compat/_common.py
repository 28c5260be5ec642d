"""What every compat cell asks and expects, whatever the framework.

The simulators answer deterministically (see :mod:`aiguillage.devtools.simulators.structured`):
text says hello from the simulator, a tool call's arguments and a structured answer fill every
string with that text and every integer with 1. So each cell can check the exact value its
framework hands the application.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

QUESTION = "What is the weather in Oslo?"


class Weather(BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"12C in {city}"


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# For JSON modes that only ask for "a JSON object": the prompt says which one.
JSON_PROMPT = (
    "Answer with a JSON object following this JSON Schema: "
    + json.dumps(Weather.model_json_schema())
    + f"\n{QUESTION}"
)


def last(values: Iterable[Any]) -> Any:
    """The last of a stream's values (the whole answer, for cumulative streams)."""
    value = None
    for value in values:  # noqa: B007 - the last one is wanted
        pass
    return value


def weather(reply: str) -> Weather:
    return Weather(city=reply, celsius=1)


def weather_arguments(reply: str) -> dict[str, Any]:
    return {"city": reply}


# Why an operation is not served on a format (the client gets a 400 unsupported_operation).
NO_COMPLETIONS = (
    "a sidecar gap: legacy completions are not translated to this format's chat API "
    "(a 400 unsupported_operation, checked)"
)
UNSUPPORTED = {
    "anthropic": {
        "embeddings": "Anthropic has no embeddings API (a 400 unsupported_operation, checked)",
        "completions": NO_COMPLETIONS,
    },
    "bedrock": {
        "embeddings": "a sidecar gap: Bedrock embeddings are InvokeModel calls, which the "
        "Bedrock adapter (Converse only) does not make (a 400 unsupported_operation, checked)",
        "completions": NO_COMPLETIONS,
    },
    "gemini": {"completions": NO_COMPLETIONS},
    "vertex-ai": {"completions": NO_COMPLETIONS},
}
