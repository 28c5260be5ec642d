"""Limits on the request path of one sidecar, counted in its own memory (no shared store).

Refusals in the client's API shape with Retry-After and a message naming the limit, its
policy, its scope and the caller; Audit mode; the audit record and the metrics; what is
not limited.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import (
    Limit,
    LimitScope,
    PolicyFinding,
    PolicyMode,
    Pricing,
    Route,
    SidecarConfig,
)
from aiguillage.sidecar.limits.quota import LimiterSettings
from tests.sidecar.conftest import (
    MESSAGES,
    RunningSidecar,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
)

# One euro per thousand tokens, in and out: a request of the tests costs about 0.02 EUR.
PRICE = Pricing(input_per_million=Decimal(1000), output_per_million=Decimal(1000))


def limited(*limits: Limit, name: str = "chat", **target: Any) -> Route:
    return route(name, eu_target(0, pricing=PRICE, **target)).model_copy(update={"limits": limits})


def config(eu: OpenAISimulator, us: OpenAISimulator, *routes: Route) -> SidecarConfig:
    return two_provider_config(eu, us, *routes).model_copy(update={"namespace": "support"})


def chat(sc: RunningSidecar, max_tokens: int = 20, model: str = "chat") -> Any:
    return sc.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "max_tokens": max_tokens},
    )


@pytest.fixture
def caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod's identity, as the injection passes it through the downward API."""
    monkeypatch.setenv("POD_NAMESPACE", "support")
    monkeypatch.setenv("POD_NAME", "billing-7d9f")
    monkeypatch.setenv("POD_SERVICE_ACCOUNT", "billing-bot")


@pytest.mark.usefixtures("caller")
def test_a_used_up_budget_refuses_with_429_naming_it(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    budget = Limit(
        policy="team-budgets", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal("0.1")
    )
    sc = start_sidecar(config(eu, us, limited(budget)))
    answers = [chat(sc) for _ in range(8)]
    served = [a for a in answers if a.status == 200]
    refused = answers[len(served) :]
    assert served
    assert refused
    assert all(a.status == 429 for a in refused)  # once refused, refused until next month
    first = refused[0]
    error = first.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "limit_refused"
    message = error["message"]
    assert message.startswith(
        "monthly budget of 0.10 EUR of AIPolicy team-budgets for namespace support "
    )
    assert "caller: service account billing-bot of namespace support, pod billing-7d9f" in message
    # Until the first of next month in Europe/Paris (the default time zone).
    assert 0 < int(first.headers["retry-after"]) <= 31 * 86400
    record = sc.audit_for(first.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("limit_refused", 429)
    assert record["serviceAccount"] == "billing-bot"
    assert record["pod"] == "billing-7d9f"
    assert record["attempts"] == []  # nothing was sent
    [entry] = record["limits"]
    assert entry["policy"] == "team-budgets"
    assert entry["limit"] == "budget"
    assert entry["scope"] == "namespace"
    assert entry["subject"] == "support"
    assert entry["result"] == "refused"
    assert entry["ceiling"] == "0.10"
    assert sc.metric(
        "aiguillage_limit_refusals_total", route="chat", policy="team-budgets", limit="budget"
    ) == len(refused)
    spend = sc.metric(
        "aiguillage_budget_spend_eur", policy="team-budgets", scope="namespace", subject="support"
    )
    billed = sum(i + o for i, o in eu.billed.values()) * 1000 / 1_000_000
    assert spend == pytest.approx(billed)
    assert spend <= 0.1
    assert sc.metric(
        "aiguillage_budget_limit_eur", policy="team-budgets", scope="namespace", subject="support"
    ) == pytest.approx(0.1)


def test_a_budget_too_small_for_the_worst_case_says_how_to_ask_for_less(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    budget = Limit(policy="tight", scope=LimitScope.ROUTE, budget_eur_per_month=Decimal("1"))
    sc = start_sidecar(config(eu, us, limited(budget)))
    # 4,096 output tokens at most (no max_tokens) at 1 EUR per thousand: more than 1 EUR.
    body = {"model": "chat", "messages": MESSAGES}
    no_maximum = sc.raw("POST", "/v1/chat/completions", json=body)
    assert no_maximum.status == 429
    message = no_maximum.json()["error"]["message"]
    assert "monthly budget of 1.00 EUR of AIPolicy tight for route chat of namespace support" in (
        message
    )
    assert "cannot cover this request: 0.00 EUR spent" in message
    assert "at most 4,096 output tokens" in message
    assert "a lower max_tokens asks for less" in message
    assert chat(sc, max_tokens=100).status == 200  # which it can


def test_anthropic_clients_get_the_refusal_in_anthropics_shape(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    rate = Limit(policy="slow", scope=LimitScope.NAMESPACE, requests_per_minute=1)
    sc = start_sidecar(config(eu, us, limited(rate)))
    client = anthropic.Anthropic(base_url=sc.url, api_key="unused", max_retries=0)
    client.messages.create(model="chat", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="chat", max_tokens=10, messages=MESSAGES)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith(
        "rate limit of 1 requests per minute of AIPolicy slow for namespace support is reached"
    )
    response = caught.value.response
    assert response.headers["x-aiguillage-error-code"] == "limit_refused"
    # This minute is full, and the next one still sees it in full at first: up to 2 minutes.
    assert 1 <= int(response.headers["retry-after"]) <= 120


def test_the_openai_sdk_raises_rate_limit_error_with_retry_after(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    tokens = Limit(policy="tpm", scope=LimitScope.WORKLOAD, tokens_per_minute=100)
    sc = start_sidecar(config(eu, us, limited(tokens)))
    client = sc.client()
    # About 35 input tokens estimated and 20 out are counted, then the real 9 or so: a few fit.
    refused = until_refused(client)
    assert "rate limit of 100 tokens per minute of AIPolicy tpm for service account" in str(refused)
    assert int(refused.response.headers["retry-after"]) >= 1
    # A request that could never fit says so.
    with pytest.raises(openai.RateLimitError, match="more than the whole limit"):
        client.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=500)


def until_refused(client: openai.OpenAI) -> openai.RateLimitError:
    for _ in range(20):
        try:
            client.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=20)
        except openai.RateLimitError as exc:
            return exc
    raise AssertionError("never refused")


def test_audit_mode_serves_counts_and_marks_the_record(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    watch = Limit(
        policy="watch", scope=LimitScope.ROUTE, requests_per_minute=2, mode=PolicyMode.AUDIT
    )
    sc = start_sidecar(config(eu, us, limited(watch)))
    answers = [chat(sc) for _ in range(5)]
    assert [a.status for a in answers] == [200] * 5
    marked = [sc.audit_for(a.headers["x-request-id"])["limits"] for a in answers]
    assert marked[:2] == [[], []]
    for entries in marked[2:]:
        [entry] = entries
        assert (entry["policy"], entry["mode"], entry["result"]) == ("watch", "Audit", "exceeded")
        assert entry["limit"] == "requests_per_minute"
    assert (
        sc.metric(
            "aiguillage_limit_audit_total",
            route="chat",
            policy="watch",
            limit="requests_per_minute",
        )
        == 3
    )
    assert sc.metric("aiguillage_limit_refusals_total") == 0


def test_several_policies_count_one_counter_and_the_tightest_refuses(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    loose = Limit(policy="loose", scope=LimitScope.NAMESPACE, requests_per_minute=10)
    tight = Limit(policy="tight", scope=LimitScope.NAMESPACE, requests_per_minute=3)
    sc = start_sidecar(config(eu, us, limited(loose, tight), limited(loose, name="other")))
    statuses = [chat(sc).status for _ in range(3)] + [chat(sc, model="other").status]
    assert statuses == [200, 200, 200, 200]
    # Four requests in the namespace's counter: "tight" refuses "chat", "loose" lets "other" in.
    refused = chat(sc)
    assert refused.status == 429
    assert "AIPolicy tight" in refused.json()["error"]["message"]
    assert chat(sc, model="other").status == 200


def test_count_tokens_and_unlimited_routes_are_not_counted(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    once = Limit(policy="once", scope=LimitScope.ROUTE, requests_per_minute=1)
    sc = start_sidecar(config(eu, us, limited(once), route("free", eu_target(0))))
    for _ in range(3):
        counted = sc.raw(
            "POST", "/v1/messages/count_tokens", json={"model": "chat", "messages": MESSAGES}
        )
        assert counted.status == 200
        assert chat(sc, model="free").status == 200
    assert chat(sc).status == 200
    assert chat(sc).status == 429


def test_a_time_zone_month_resets_the_budget(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    """31 March 23:59:30 in Paris, then 30 s later: April's budget is untouched."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    end_of_march = datetime(2026, 3, 31, 23, 59, 30, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    offset = [0.0]
    settings = LimiterSettings(clock=lambda: end_of_march + offset[0])  # time stands still
    budget = Limit(policy="b", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal("0.2"))
    sc = start_sidecar(config(eu, us, limited(budget)), limiter_settings=settings)
    served = 0
    while chat(sc).status == 200:
        served += 1
    assert served > 0
    refused = chat(sc)
    assert refused.status == 429
    assert int(refused.headers["retry-after"]) <= 31  # April begins in half a minute
    offset[0] = 31.0
    assert chat(sc).status == 200


def test_policy_findings_of_an_attempted_target_are_audited_and_counted(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    finding = PolicyFinding(
        policy="watch-us", reason='provider "mistral-eu" is not in allowedProviders [openai-us]'
    )
    sc = start_sidecar(config(eu, us, route("chat", eu_target(0, policy_audit=(finding,)))))
    answer = chat(sc)
    assert answer.status == 200
    [attempt] = sc.audit_for(answer.headers["x-request-id"])["attempts"]
    assert attempt["policyFindings"] == [{"policy": "watch-us", "reason": finding.reason}]
    chat(sc)
    sc.wait_audit(2)
    assert sc.metric("aiguillage_policy_findings_total", policy="watch-us", route="chat") == 2
