"""JSON mode (``response_format: json_object``) on every provider format, emulated where the
provider lacks it (adapters/json_mode.py, used by the Anthropic and Bedrock adapters)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.answers import Answer
from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters import anthropic, bedrock, json_mode
from aiguillage.sidecar.adapters.json_mode import JsonMode, JsonTextStream, json_object_mode
from aiguillage.sidecar.adapters.openai_chat import parse_chat
from aiguillage.sidecar.config import SidecarConfig, Target
from aiguillage.sidecar.errors import UpstreamProtocol
from tests.sidecar.conftest import (
    ANTHROPIC_KEY,
    EU_KEY,
    EU_MODEL,
    RunningSidecar,
    StartSidecar,
    anthropic_provider,
    provider_for,
    route,
)

JSON_MODE: Any = {"type": "json_object"}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
ASK: list[Any] = [
    {"role": "system", "content": f"Answer in JSON following this schema: {json.dumps(SCHEMA)}"},
    {"role": "user", "content": "Weather in Oslo?"},
]
TOOLS: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": ASK}, None),
        ({"messages": ASK, "response_format": {"type": "json_schema"}}, None),
        ({"messages": ASK, "response_format": JSON_MODE}, JsonMode(prefill=True)),
        # The model may call a tool: a "{" prefill would stop it from doing so.
        ({"messages": ASK, "response_format": JSON_MODE, "tools": TOOLS}, JsonMode(False)),
        (
            {"messages": ASK, "response_format": JSON_MODE, "tools": TOOLS, "tool_choice": "none"},
            JsonMode(True),
        ),
        # The client prefilled the answer itself.
        (
            {
                "messages": [*ASK, {"role": "assistant", "content": "["}],
                "response_format": JSON_MODE,
            },
            JsonMode(False),
        ),
    ],
)
def test_when_json_mode_prefills(body: dict[str, Any], expected: JsonMode | None) -> None:
    assert json_object_mode(body) == expected


def test_anthropic_request_gets_the_instruction_and_the_prefill() -> None:
    body = {"model": "chat", "messages": ASK, "response_format": JSON_MODE}
    out = anthropic.request_body(parse_chat(body, "anthropic"), body, stream=False)

    assert out["system"][-1] == {"type": "text", "text": json_mode.INSTRUCTION}
    assert out["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "{"}]}
    assert "output_config" not in out


def test_bedrock_request_gets_the_instruction_and_the_prefill() -> None:
    body = {"model": "chat", "messages": ASK, "response_format": JSON_MODE}
    out = bedrock.request_body(parse_chat(body, "bedrock"), json_object_mode(body))

    assert out["system"][-1] == {"text": json_mode.INSTRUCTION}
    assert out["messages"][-1] == {"role": "assistant", "content": [{"text": "{"}]}


@pytest.mark.parametrize(
    ("text", "finish", "calls", "ok"),
    [
        ('{"a": 1}', "stop", False, True),
        ('  {"a": 1}\n', "stop", False, True),
        ("[1, 2]", "stop", False, False),
        ('{"a": 1} and some prose', "stop", False, False),
        ("Sure! Here it is", "stop", False, False),
        ('{"a": ', "length", False, True),  # cut by max_tokens: passed as OpenAI would
        (None, "tool_calls", True, True),
    ],
)
def test_answers_are_checked(text: str | None, finish: str, calls: bool, ok: bool) -> None:
    if ok:
        json_mode.check_json_object(text, finish, calls)
    else:
        with pytest.raises(UpstreamProtocol):
            json_mode.check_json_object(text, finish, calls)


def test_a_streamed_answer_gets_its_prefill_back_and_is_checked_at_the_end() -> None:
    stream = JsonTextStream(JsonMode(prefill=True))
    assert stream.text('"a": ') == '{"a": '
    assert stream.text("1}") == "1}"
    stream.finish("stop", has_tool_calls=False)

    broken = JsonTextStream(JsonMode(prefill=True))
    broken.text("oops, prose")
    with pytest.raises(UpstreamProtocol):
        broken.finish("stop", has_tool_calls=False)


# -- every provider format, through a sidecar ------------------------------------------------


def weather(sim: Simulator) -> dict[str, Any]:
    return {"city": f"Hello from {sim.name}! This is a simulated answer.", "celsius": 1}


def test_json_object(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    answer = sidecar.client().chat.completions.create(
        model="chat", messages=ASK, response_format=JSON_MODE
    )
    assert json.loads(answer.choices[0].message.content or "") == weather(sim)


def test_streamed_json_object(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    stream = sidecar.client().chat.completions.create(
        model="chat", messages=ASK, response_format=JSON_MODE, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert json.loads(text) == weather(sim)


def test_json_schema(served: tuple[RunningSidecar, Simulator]) -> None:
    sidecar, sim = served
    answer = sidecar.client().chat.completions.create(
        model="chat",
        messages=ASK[1:],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
        },
    )
    assert json.loads(answer.choices[0].message.content or "") == weather(sim)


class ProseClaude(AnthropicSimulator):
    """A model that ignores JSON mode and answers prose."""

    def _structured(self, body: dict[str, Any]) -> Answer | None:
        return self.structured("Sure! Here is the weather: 12C.")


@pytest.fixture
def prose_first(lt: LoopThread, start_sidecar: StartSidecar, eu: OpenAISimulator) -> Any:
    sim = ProseClaude("prose-claude", api_key=ANTHROPIC_KEY)
    lt.run(sim.start())
    providers = {
        "anthropic-us": anthropic_provider(sim),
        "mistral-eu": provider_for(eu, location="FR", jurisdiction="FR", credential="mistral-eu"),
    }
    chat = route(
        "chat",
        Target(provider="anthropic-us", model="claude-sonnet-4-5", priority=0),
        Target(provider="mistral-eu", model=EU_MODEL, priority=1),
    )
    config = SidecarConfig(namespace="team-a", providers=providers, routes={"chat": chat})
    yield start_sidecar(config, {"anthropic-us": ANTHROPIC_KEY, "mistral-eu": EU_KEY}), eu
    lt.run(sim.stop())


def test_an_answer_that_is_not_json_fails_over(prose_first: Any) -> None:
    sidecar, eu = prose_first
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat", messages=ASK, response_format=JSON_MODE
    )

    assert json.loads(raw.parse().choices[0].message.content or "") == weather(eu)
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert [a["outcome"] for a in record["attempts"]] == ["protocol_error", "ok"]


def test_a_streamed_answer_that_is_not_json_ends_with_an_error(prose_first: Any) -> None:
    sidecar, _ = prose_first
    stream = sidecar.client().chat.completions.create(
        model="chat", messages=ASK, response_format=JSON_MODE, stream=True
    )
    with pytest.raises(openai.APIError, match="not a JSON object"):
        for _ in stream:
            pass
