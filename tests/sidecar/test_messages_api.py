"""The sidecar's Anthropic Messages API (``POST /v1/messages``), through the official SDK.

The ``anthropic`` SDK (``base_url`` = the sidecar, no ``/v1``) talks to a route served by the
Anthropic simulator (native pass-through) or by an OpenAI-compatible one (translated both
ways), with failover between them, and gets the sidecar's own errors in Anthropic's shape so
that it raises the right exception classes. Translation details are unit-tested in
tests/sidecar/frontends/test_anthropic.py and tests/sidecar/adapters/test_anthropic.py.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import anthropic
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import Residency, SidecarConfig, Target
from tests.sidecar.conftest import (
    ANTHROPIC_KEY,
    CLAUDE_AND_MISTRAL_KEYS,
    CLIENT_KEY,
    EU_MODEL,
    RunningSidecar,
    StartSidecar,
    claude_and_mistral,
    route,
)

KEY = ANTHROPIC_KEY
CLAUDE = "claude-sonnet-4-5"
HELLO_CLAUDE = "Hello from claude-sim! This is a simulated answer."
HELLO_EU = "Hello from mistral-eu! This is a simulated answer."
HI: list[Any] = [{"role": "user", "content": "Summarise this ticket please"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def sidecar(
    start_sidecar: StartSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> RunningSidecar:
    providers = claude_and_mistral(claude, eu)
    claude_target = Target(provider="anthropic-us", model=CLAUDE, priority=0)
    mistral_target = Target(provider="mistral-eu", model=EU_MODEL, priority=1)
    routes = [
        route("claude", claude_target),
        route("mistral", mistral_target),
        route("claude-then-mistral", claude_target, mistral_target),
        route("sovereign", claude_target, residency=Residency(locations=frozenset({"FR", "DE"}))),
    ]
    config = SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )
    return start_sidecar(config, CLAUDE_AND_MISTRAL_KEYS)


def client(sidecar: RunningSidecar) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def async_client(sidecar: RunningSidecar) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0, timeout=20
    )


def request_id() -> dict[str, str]:
    return {"x-request-id": uuid4().hex}


# -- native: Anthropic clients, Anthropic provider -------------------------------------------


def test_sync_message_passes_through_with_the_providers_model_and_key(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    raw = client(sidecar).messages.with_raw_response.create(
        model="claude",
        max_tokens=64,
        system="Be brief.",
        messages=HI,
        metadata={"user_id": "u-1"},
    )
    message = raw.parse()

    assert message.content[0].text == HELLO_CLAUDE  # type: ignore[union-attr]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == (
        "end_turn",
        6,
        8,
    )
    seen = claude.last_request
    assert seen.body == {
        "max_tokens": 64,
        "messages": HI,
        "model": CLAUDE,
        "metadata": {"user_id": "u-1"},
        "system": "Be brief.",
    }
    assert seen.headers["x-api-key"] == KEY
    # The client's API version travels with its body, which is in that version's shape.
    assert (
        seen.headers["anthropic-version"] == raw.http_response.request.headers["anthropic-version"]
    )
    assert CLIENT_KEY not in str(seen.headers)
    headers = raw.headers
    assert (headers["x-aiguillage-route"], headers["x-aiguillage-provider"]) == (
        "claude",
        "anthropic-us",
    )
    assert (headers["x-aiguillage-model"], headers["x-aiguillage-location"]) == (CLAUDE, "US")
    assert headers["x-aiguillage-attempts"] == "1"
    record = sidecar.audit_for(headers["x-request-id"])
    assert (record["operation"], record["outcome"], record["usage"]) == (
        "messages",
        "ok",
        {"inputTokens": 6, "outputTokens": 8},
    )


async def test_async_message(sidecar: RunningSidecar) -> None:
    message = await async_client(sidecar).messages.create(model="claude", max_tokens=4, messages=HI)
    assert message.content[0].text == "Hello from claude-sim! This"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"


def test_stream_helper_relays_the_events(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    headers = request_id()
    with client(sidecar).messages.stream(
        model="claude", max_tokens=64, messages=HI, extra_headers=headers
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == HELLO_CLAUDE
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 8)
    assert final.model == CLAUDE
    assert claude.last_request.body["stream"] is True
    record = sidecar.audit_for(headers["x-request-id"])
    assert (record["stream"], record["usage"]) == (True, {"inputTokens": 4, "outputTokens": 8})


def test_tool_use_round_trip(sidecar: RunningSidecar, claude: AnthropicSimulator) -> None:
    api = client(sidecar)
    first = api.messages.create(model="claude", max_tokens=64, messages=HI, tools=[WEATHER])
    use = first.content[0]
    assert (first.stop_reason, use.type) == ("tool_use", "tool_use")

    messages: list[Any] = [
        *HI,
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12C"}],  # type: ignore[union-attr]
        },
    ]
    second = api.messages.create(model="claude", max_tokens=64, messages=messages, tools=[WEATHER])

    assert second.content[0].text == HELLO_CLAUDE  # type: ignore[union-attr]
    assert claude.last_request.body["messages"][2]["content"][0]["tool_use_id"] == use.id  # type: ignore[union-attr]


async def test_streamed_tool_use(sidecar: RunningSidecar) -> None:
    async with async_client(sidecar).messages.stream(
        model="claude", max_tokens=64, messages=HI, tools=[WEATHER]
    ) as stream:
        final = await stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "get_weather", {"city": HELLO_CLAUDE})
    ]
    assert final.stop_reason == "tool_use"


# -- translated: Anthropic clients, OpenAI-compatible provider -------------------------------


def test_sync_message_through_an_openai_provider(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    raw = client(sidecar).messages.with_raw_response.create(
        model="mistral", max_tokens=64, system="Be brief.", messages=HI
    )
    message = raw.parse()

    assert message.content[0].text == HELLO_EU  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 8)
    assert eu.last_request.body == {
        "model": EU_MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, *HI],
        "max_tokens": 64,
    }
    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert (record["operation"], record["usage"]) == (
        "messages",
        {"inputTokens": 6, "outputTokens": 8},
    )


async def test_stream_helper_through_an_openai_provider(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    async with async_client(sidecar).messages.stream(
        model="mistral", max_tokens=3, messages=HI
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()

    assert text == "Hello from mistral-eu!"
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 3)
    assert eu.last_request.body["stream_options"] == {"include_usage": True}


def test_tool_use_round_trip_through_an_openai_provider(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    api = client(sidecar)
    first = api.messages.create(model="mistral", max_tokens=64, messages=HI, tools=[WEATHER])
    use = first.content[0]
    assert (first.stop_reason, use.type, use.name, use.input) == (  # type: ignore[union-attr]
        "tool_use",
        "tool_use",
        "get_weather",
        {"city": HELLO_EU},
    )
    assert eu.last_request.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]

    messages: list[Any] = [
        *HI,
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12C"}],  # type: ignore[union-attr]
        },
    ]
    second = api.messages.create(model="mistral", max_tokens=64, messages=messages, tools=[WEATHER])

    assert second.content[0].text == HELLO_EU  # type: ignore[union-attr]
    assert eu.last_request.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": use.id,  # type: ignore[union-attr]
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": json.dumps({"city": HELLO_EU}, separators=(",", ":")),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": use.id, "content": "12C"},  # type: ignore[union-attr]
    ]


def test_streamed_tool_use_through_an_openai_provider(sidecar: RunningSidecar) -> None:
    with client(sidecar).messages.stream(
        model="mistral", max_tokens=64, messages=HI, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "get_weather", {"city": HELLO_EU})
    ]
    assert final.stop_reason == "tool_use"


def test_what_the_provider_cannot_do_is_refused_before_contacting_it(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    headers = request_id()
    with pytest.raises(anthropic.BadRequestError, match="thinking") as info:
        client(sidecar).messages.create(
            model="mistral",
            max_tokens=2048,
            messages=HI,
            thinking={"type": "enabled", "budget_tokens": 1024},
            extra_headers=headers,
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert eu.requests == []
    record = sidecar.audit_for(headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("rejected", 400)


# -- failover --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [529, 500])
def test_anthropic_overloaded_fails_over_to_the_openai_target(
    sidecar: RunningSidecar, claude: AnthropicSimulator, status: int
) -> None:
    claude.set_faults([{"kind": "status", "status": status}])
    raw = client(sidecar).messages.with_raw_response.create(
        model="claude-then-mistral", max_tokens=64, messages=HI
    )

    assert raw.parse().content[0].text == HELLO_EU  # type: ignore[union-attr]
    assert (raw.headers["x-aiguillage-provider"], raw.headers["x-aiguillage-attempts"]) == (
        "mistral-eu",
        "2",
    )
    attempts = sidecar.audit_for(raw.headers["x-request-id"])["attempts"]
    assert [(a["provider"], a["outcome"], a.get("status")) for a in attempts] == [
        ("anthropic-us", "http_error", status),
        ("mistral-eu", "ok", None),
    ]


def test_error_event_before_any_content_fails_over(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults([{"kind": "in_stream_error", "after_chunks": 0}])
    headers = request_id()
    with client(sidecar).messages.stream(
        model="claude-then-mistral", max_tokens=64, messages=HI, extra_headers=headers
    ) as stream:
        text = "".join(stream.text_stream)
        attempts_header = stream.response.headers["x-aiguillage-attempts"]

    assert text == HELLO_EU
    assert attempts_header == "2"
    record = sidecar.audit_for(headers["x-request-id"])
    assert record["outcome"] == "ok"
    assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [
        ("anthropic-us", "protocol_error"),
        ("mistral-eu", "ok"),
    ]
    assert "overloaded_error" in record["attempts"][0]["detail"]


# -- errors in Anthropic's shape -------------------------------------------------------------


def test_unknown_model_is_not_found(sidecar: RunningSidecar) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(sidecar).messages.create(model="nope", max_tokens=8, messages=HI)
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": 'no route for model "nope" (routes: claude, claude-then-mistral, '
            "mistral, sovereign)",
        },
    }
    assert info.value.response.headers["x-aiguillage-error-code"] == "route_not_found"
    assert info.value.response.headers["x-request-id"]


def test_no_compliant_target_is_a_503(sidecar: RunningSidecar, claude: AnthropicSimulator) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client(sidecar).messages.create(model="sovereign", max_tokens=8, messages=HI)
    assert info.value.status_code == 503
    assert info.value.response.headers["x-aiguillage-error-code"] == "no_compliant_target"
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert claude.requests == []


def test_all_targets_failed_is_a_502_listing_the_attempts(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 529}])
    eu.set_faults([{"kind": "status", "status": 503}])
    with pytest.raises(anthropic.InternalServerError) as info:
        client(sidecar).messages.create(model="claude-then-mistral", max_tokens=8, messages=HI)
    error = info.value.body["error"]  # type: ignore[index]
    assert info.value.status_code == 502
    assert info.value.response.headers["x-aiguillage-error-code"] == "all_targets_failed"
    # Exactly Anthropic's error shape, the attempts summarised in its message.
    assert set(error) == {"type", "message"}
    assert "anthropic-us/claude-sonnet-4-5: http_error 529" in error["message"]
    assert "mistral-eu/mistral-small-latest: http_error 503" in error["message"]


def test_provider_refusals_are_relayed_in_anthropic_shape(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 400, "message": "messages: too long"}])
    with pytest.raises(anthropic.BadRequestError) as native:
        client(sidecar).messages.create(model="claude", max_tokens=8, messages=HI)
    assert native.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "messages: too long",
    }

    eu.set_faults([{"kind": "status", "status": 400, "message": "context too long"}])
    with pytest.raises(anthropic.BadRequestError) as translated:
        client(sidecar).messages.create(model="mistral", max_tokens=8, messages=HI)
    assert translated.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "context too long"},
    }


def test_invalid_json_and_missing_model_are_anthropic_400s(sidecar: RunningSidecar) -> None:
    resp = sidecar.raw("POST", "/v1/messages", data=b"{not json")
    assert resp.status == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["x-aiguillage-error-code"] == "invalid_json"
    assert resp.headers["x-request-id"]

    resp = sidecar.raw("POST", "/v1/messages", json={"max_tokens": 8, "messages": HI})
    assert (resp.status, resp.headers["x-aiguillage-error-code"]) == (400, "model_required")


def test_a_stream_broken_after_its_first_byte_raises_in_the_sdk(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults([{"kind": "in_stream_error", "after_chunks": 2}])
    headers = request_id()
    received: list[str] = []

    def read() -> None:
        with client(sidecar).messages.stream(
            model="claude-then-mistral", max_tokens=64, messages=HI, extra_headers=headers
        ) as stream:
            received.extend(stream.text_stream)

    with pytest.raises(anthropic.APIStatusError, match="overloaded_error") as info:
        read()
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "".join(received) == "Hello from claude-sim! This"
    record = sidecar.audit_for(headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("stream_error", 200)
    assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [
        ("anthropic-us", "stream_error")  # no failover once the client has bytes
    ]


def test_a_translated_stream_cut_after_its_first_byte_raises_in_the_sdk(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "reset_mid_stream", "after_chunks": 2}])
    headers = request_id()
    received: list[str] = []

    def read() -> None:
        with client(sidecar).messages.stream(
            model="mistral", max_tokens=64, messages=HI, extra_headers=headers
        ) as stream:
            received.extend(stream.text_stream)

    with pytest.raises(anthropic.APIStatusError, match="provider stream failed"):
        read()
    assert "".join(received) == "Hello from mistral-eu! This"
    record = sidecar.audit_for(headers["x-request-id"])
    assert record["outcome"] == "stream_error"
