"""AIPolicy's model (api/policy.py), its selector (api/selector.py) and pricing currencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from aiguillage.operator.api.policy import AIPolicySpec
from aiguillage.operator.api.provider import ModelPricing
from aiguillage.operator.api.selector import LabelSelector


def test_the_selector_reads_like_kubectl() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"team": "a", "example.com/tier": "gold"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.text() == "example.com/tier=gold,team=a,env in (prod,staging),!legacy"
    assert LabelSelector().text() == "*"
    assert LabelSelector().matches({})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "values must be given"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
         "values must be given for In and NotIn, and only for them"),
        ({"matchLabels": {"bad key!": "x"}}, "must be a label key"),
        ({"matchLabels": {"a": "-x"}}, "must be a label value"),
    ],
)  # fmt: skip
def test_bad_selectors_are_refused(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabelSelector.model_validate(selector)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "namespaceSelector\n  Field required"),
        ({"namespaceSelector": {}, "limits": [{"per": "namespace"}]},
         "a limit needs requestsPerMinute, tokensPerMinute or budgetEurPerMonth"),
        ({"namespaceSelector": {}, "limits": [{"per": "pod", "requestsPerMinute": 1}]},
         "'namespace', 'route' or 'workload'"),
        ({"namespaceSelector": {}, "mode": "Warn"}, "'Enforce' or 'Audit'"),
        ({"namespaceSelector": {}, "residency": {"locations": ["Europe"]}},
         "must be a country code in capitals"),
    ],
)  # fmt: skip
def test_bad_policies_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AIPolicySpec.model_validate(spec)


def test_prices_in_another_currency_are_converted_to_euros() -> None:
    usd = ModelPricing.model_validate(
        {
            "inputPerMillion": "0.15",
            "outputPerMillion": "0.60",
            "currency": "USD",
            "eurRate": "0.92",
        }
    )
    assert (usd.input(), usd.output()) == (Decimal("0.1380"), Decimal("0.5520"))
    eur = ModelPricing.model_validate({"inputPerMillion": "0.10", "outputPerMillion": "0.30"})
    assert (eur.input(), eur.output()) == (Decimal("0.10"), Decimal("0.30"))


@pytest.mark.parametrize(
    "pricing",
    [
        {"currency": "USD"},
        {"currency": "EUR", "eurRate": "1"},
        {"currency": "usd", "eurRate": "0.9"},
    ],
)
def test_a_rate_is_required_with_another_currency_and_only_then(pricing: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ModelPricing.model_validate({"inputPerMillion": "1", "outputPerMillion": "1", **pricing})
