"""Anthropic's token counting on the sidecar (frontends/count_tokens.py), and which client
headers reach providers (only ``anthropic-beta``/``anthropic-version``, only to Anthropic)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import Residency, SidecarConfig, Target
from aiguillage.sidecar.frontends.count_tokens import estimate
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

CLAUDE = "claude-sonnet-4-5"
HI: list[Any] = [{"role": "user", "content": "Count the words of this prompt please"}]
BETA = "context-1m-2025-08-07,interleaved-thinking-2025-05-14"


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
        route(
            "mistral-then-claude",
            Target(provider="mistral-eu", model=EU_MODEL, priority=0),
            Target(provider="anthropic-us", model=CLAUDE, priority=1),
        ),
        route("eu-only", claude_target, residency=Residency(locations=frozenset({"FR"}))),
    ]
    config = SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )
    return start_sidecar(config, CLAUDE_AND_MISTRAL_KEYS)


def client(sidecar: RunningSidecar, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0, default_headers=headers
    )


def test_an_anthropic_target_counts_exactly_with_the_clients_beta_flags(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    raw = client(sidecar, **{"anthropic-beta": BETA}).messages.with_raw_response.count_tokens(
        model="mistral-then-claude", messages=HI, system="Be brief."
    )
    counted = raw.parse()

    assert counted.input_tokens == 9  # what the simulator counts: one token per word
    seen = claude.last_request
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.body["model"] == CLAUDE
    assert seen.headers["anthropic-beta"] == BETA
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert CLIENT_KEY not in str(seen.headers)
    assert raw.headers["x-aiguillage-provider"] == "anthropic-us"
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert record["operation"] == "messages.count_tokens"
    assert record["usage"] == {"inputTokens": 0, "outputTokens": 0}  # counting is free
    assert [a["outcome"] for a in record["attempts"]] == ["skipped_unsupported", "ok"]


def test_without_an_anthropic_target_the_sidecar_estimates_and_says_so(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    raw = client(sidecar).messages.with_raw_response.count_tokens(model="mistral", messages=HI)

    assert raw.parse().input_tokens == estimate({"messages": HI})
    assert raw.headers["x-aiguillage-answered-by"] == "sidecar"
    assert eu.requests == []  # the prompt went nowhere
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("answered_by_sidecar", 200)


def test_residency_applies_to_counting_too(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client(sidecar).messages.count_tokens(model="eu-only", messages=HI)
    assert info.value.status_code == 503
    assert claude.requests == []


def test_a_failing_anthropic_target_is_reported_not_hidden_behind_an_estimate(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 500}])
    with pytest.raises(anthropic.APIStatusError) as info:
        client(sidecar).messages.count_tokens(model="claude", messages=HI)
    assert info.value.status_code == 502


def test_estimate_counts_text_tools_and_images() -> None:
    text = "x" * 40
    body = {
        "system": [{"type": "text", "text": text}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "A" * 10_000,
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "abcd", "input": {"k": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": text}],
            },
        ],
        "tools": [{"name": "abcd", "input_schema": {"type": "object"}}],
    }
    tool_json = len('{"name":"abcd","input_schema":{"type":"object"}}')
    chars = 3 * 40 + len("abcd") + len('{"k":1}') + tool_json
    assert estimate(body) == -(-chars // 4) + 1600


# -- client headers --------------------------------------------------------------------------


def test_anthropic_beta_reaches_anthropic_targets_only_and_credentials_never_travel(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    headers = {"anthropic-beta": BETA, "cookie": "session=secret", "x-custom": "no"}
    api = client(sidecar, **headers)
    api.messages.create(model="claude", max_tokens=16, messages=HI)
    api.messages.create(model="mistral", max_tokens=16, messages=HI)

    to_claude, to_mistral = claude.last_request.headers, eu.last_request.headers
    assert to_claude["anthropic-beta"] == BETA
    assert "anthropic-beta" not in to_mistral
    assert "anthropic-version" not in to_mistral
    for seen in (to_claude, to_mistral):
        assert "cookie" not in seen
        assert "x-custom" not in seen
        assert CLIENT_KEY not in str(seen)


def test_openai_clients_translated_to_anthropic_send_no_beta_flags(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    sidecar.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "claude", "messages": HI},
        headers={"anthropic-beta": BETA},
    )
    # The beta flag describes an Anthropic body; the translated body is the sidecar's own.
    assert "anthropic-beta" not in claude.last_request.headers
