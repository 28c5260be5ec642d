"""What clients are told when no target answered (sidecar/outcomes.py), through real SDKs.

The SDKs retry 408/409/429/5xx on their own, so the status is checked together with what
the SDK then does: a 400 is asked once, a 429 is retried after the ``Retry-After`` the
providers asked for, and a 502 names every attempt.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.audit import AttemptRecord, AuditRecord
from aiguillage.sidecar.config import Residency, SidecarConfig, Target
from aiguillage.sidecar.outcomes import classify
from tests.sidecar.conftest import (
    CLAUDE_AND_MISTRAL_KEYS,
    CLIENT_KEY,
    EU_MODEL,
    MESSAGES,
    RunningSidecar,
    StartSidecar,
    claude_and_mistral,
    route,
)

CLAUDE = "claude-sonnet-4-5"


@pytest.fixture
def sidecar(
    start_sidecar: StartSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> RunningSidecar:
    providers = claude_and_mistral(claude, eu)
    claude_target = Target(provider="anthropic-us", model=CLAUDE, priority=0)
    mistral_target = Target(provider="mistral-eu", model=EU_MODEL, priority=1)
    routes = [
        route("claude", claude_target),
        route("both", claude_target, mistral_target),
        # The only target that could embed is outside the residency: nothing can.
        route(
            "claude-eu",
            claude_target,
            mistral_target,
            residency=Residency(locations=frozenset({"US"})),
        ),
    ]
    config = SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )
    return start_sidecar(config, CLAUDE_AND_MISTRAL_KEYS)


def retrying_client(sidecar: RunningSidecar) -> openai.OpenAI:
    return openai.OpenAI(base_url=sidecar.base_url, api_key=CLIENT_KEY, max_retries=2, timeout=20)


@pytest.mark.parametrize("model", ["claude", "claude-eu"])
def test_an_operation_no_target_can_serve_is_a_400_asked_once(
    sidecar: RunningSidecar, claude: AnthropicSimulator, model: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        retrying_client(sidecar).embeddings.create(model=model, input="hello")

    assert info.value.status_code == 400
    assert info.value.code == "unsupported_operation"
    assert "anthropic cannot serve embeddings" in info.value.message
    assert claude.requests == []
    records = sidecar.wait_audit(1)
    assert len(records) == 1  # the SDK did not retry
    assert (records[0]["outcome"], records[0]["status"]) == ("unsupported_operation", 400)


def test_when_every_provider_is_rate_limited_the_client_gets_a_429_with_the_shortest_wait(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 429, "retry_after": 7}], repeat=True)
    eu.set_faults([{"kind": "status", "status": 429, "retry_after": 3}], repeat=True)
    client = openai.OpenAI(base_url=sidecar.base_url, api_key=CLIENT_KEY, max_retries=0)

    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="both", messages=MESSAGES)

    headers = info.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("3", "3000")
    assert info.value.code == "upstream_rate_limited"
    body: Any = info.value.body
    assert [a["status"] for a in body["attempts"]] == [429, 429]
    record = sidecar.wait_audit(1)[0]
    assert (record["outcome"], record["status"]) == ("upstream_rate_limited", 429)


def test_anthropic_clients_get_529_overloaded_when_every_provider_is_overloaded(
    sidecar: RunningSidecar, claude: AnthropicSimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 529, "retry_after": 2}], repeat=True)
    client = anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0)

    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude", max_tokens=16, messages=MESSAGES)

    assert info.value.status_code == 529
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert info.value.response.headers["retry-after"] == "2"


def test_anthropic_clients_get_a_rate_limit_error_when_one_said_429(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 529}], repeat=True)
    eu.set_faults([{"kind": "status", "status": 429}], repeat=True)
    client = anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0)

    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="both", max_tokens=16, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "retry-after" not in info.value.response.headers  # no provider said how long


def test_other_failures_stay_a_502_naming_each_attempt(
    sidecar: RunningSidecar, claude: AnthropicSimulator, eu: OpenAISimulator
) -> None:
    claude.set_faults([{"kind": "status", "status": 429}], repeat=True)
    eu.set_faults([{"kind": "status", "status": 500}], repeat=True)
    client = openai.OpenAI(base_url=sidecar.base_url, api_key=CLIENT_KEY, max_retries=0)

    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="both", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "all_targets_failed"


def attempt(outcome: str, status: int | None = None, wait: float | None = None) -> AttemptRecord:
    return AttemptRecord("p", "m", "FR", "FR", outcome, status=status, retry_after=wait)


def record(*attempts: AttemptRecord) -> AuditRecord:
    return AuditRecord(0, "r", "ns", "pod", "chat", "chat", "embeddings", False, {}, list(attempts))


@pytest.mark.parametrize(
    ("attempts", "kind"),
    [
        ([attempt("skipped_unsupported")], "unsupported"),
        ([attempt("skipped_residency"), attempt("skipped_unsupported")], "unsupported"),
        # A target that could serve but whose breaker is open: not the operation's fault.
        ([attempt("skipped_unsupported"), attempt("skipped_circuit_open")], "failed"),
        ([attempt("http_error", 429), attempt("http_error", 529)], "throttled"),
        ([attempt("skipped_unsupported"), attempt("http_error", 429)], "throttled"),
        ([attempt("http_error", 429), attempt("timeout")], "failed"),
        ([attempt("skipped_residency")], "failed"),
        # Data protection keeps the request from every target that could serve it.
        ([attempt("skipped_residency"), attempt("skipped_personal_data")], "blocked"),
        ([attempt("skipped_unsupported"), attempt("skipped_personal_data")], "blocked"),
        # ...but a target skipped for a passing reason might serve it later, unchanged.
        ([attempt("skipped_circuit_open"), attempt("skipped_personal_data")], "failed"),
        ([attempt("skipped_personal_data"), attempt("http_error", 503)], "failed"),
    ],
)
def test_classify(attempts: list[AttemptRecord], kind: str) -> None:
    assert classify(record(*attempts), "embeddings").kind == kind


def test_the_wait_is_the_shortest_asked_rounded_up_to_whole_seconds() -> None:
    failure = classify(
        record(
            attempt("http_error", 429, 2.2),
            attempt("http_error", 429),
            attempt("http_error", 529, 9),
        ),
        "chat",
    )
    assert failure.headers == {"retry-after": "3", "retry-after-ms": "2200"}
    assert not failure.overloaded


def test_a_block_at_several_targets_says_each_distinct_refusal_once() -> None:
    def blocked(where: str) -> AttemptRecord:
        refusal = attempt("skipped_personal_data")
        refusal.detail = f"the request contains personal data (iban) ... in {where}"
        return refusal

    failure = classify(record(blocked("US"), blocked("US"), blocked("CN")), "chat")
    assert failure.message == (
        "the request contains personal data (iban) ... in US; "
        "the request contains personal data (iban) ... in CN"
    )
