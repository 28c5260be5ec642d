"""Data-protection rules: the shape, validation messages, strictest-wins and combining."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aiguillage.sidecar.privacy.rules import Action, DataProtectionRules
from aiguillage.sidecar.residency import EU

PSEUDONYMISE_OUTSIDE_EU = {
    "rules": [
        {"categories": ["email", "phone"], "action": "audit"},
        {
            "categories": ["email", "phone"],
            "action": "pseudonymise",
            "when": {"notJurisdictions": ["EU"]},
        },
        {"categories": ["iban"], "action": "block", "source": "AIPolicy strict"},
    ]
}


def rules(data: dict[str, object]) -> DataProtectionRules:
    return DataProtectionRules.model_validate(data)


def test_the_strictest_matching_action_wins_per_target() -> None:
    r = rules(PSEUDONYMISE_OUTSIDE_EU)
    eu = r.action_for("email", "FR", "FR")
    us = r.action_for("email", "US", "US")
    assert eu is not None
    assert eu[0] is Action.AUDIT
    assert us is not None
    assert us[0] is Action.PSEUDONYMISE
    block = r.action_for("iban", "FR", "FR")
    assert block is not None
    assert block[1].source == "AIPolicy strict"
    assert r.action_for("vat", "US", "US") is None  # no rule names it: not looked for
    assert r.categories == {"email", "phone", "iban"}


def test_an_unknown_jurisdiction_counts_as_outside_every_set() -> None:
    r = rules(PSEUDONYMISE_OUTSIDE_EU)
    decided = r.action_for("email", None, None)
    assert decided is not None
    assert decided[0] is Action.PSEUDONYMISE
    only_eu = rules(
        {"rules": [{"categories": ["email"], "action": "redact", "when": {"locations": ["EU"]}}]}
    )
    assert only_eu.action_for("email", None, None) is None
    assert only_eu.action_for("email", "DE", None) is not None


def test_groups_are_expanded_and_serialised_sorted() -> None:
    r = rules(PSEUDONYMISE_OUTSIDE_EU)
    when = r.rules[1].when
    assert when is not None
    assert when.not_jurisdictions == EU
    dumped = r.model_dump(mode="json", by_alias=True)
    assert dumped["rules"][1]["when"]["notJurisdictions"] == sorted(EU)
    assert rules(dumped) == r


def test_combining_only_tightens() -> None:
    policy = rules(PSEUDONYMISE_OUTSIDE_EU)
    route = rules({"rules": [{"categories": ["email"], "action": "redact"}]})
    loose = rules({"rules": [{"categories": ["iban"], "action": "audit"}]})
    both = policy.combine(route).combine(loose)
    decided = both.action_for("email", "FR", "FR")
    assert decided is not None
    assert decided[0] is Action.REDACT
    decided = both.action_for("iban", "FR", "FR")
    assert decided is not None
    assert decided[0] is Action.BLOCK


def test_a_custom_category_defined_twice_differently_cannot_combine() -> None:
    a = rules({"patterns": [{"name": "emp", "regex": "EMP-[0-9]{6}"}],
               "rules": [{"categories": ["emp"], "action": "redact"}]})  # fmt: skip
    b = rules({"patterns": [{"name": "emp", "regex": "E-[0-9]{4}"}],
               "rules": [{"categories": ["emp"], "action": "redact"}]})  # fmt: skip
    assert a.combine(a).patterns == a.patterns
    with pytest.raises(ValueError, match="pattern 'emp' is defined twice, differently"):
        a.combine(b)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": [{"categories": ["emails"], "action": "audit"}]},
         "rules[0].categories[0]: unknown category 'emails'; known: "),
        ({"rules": [{"categories": ["email"], "action": "erase"}]}, "rules.0.action"),
        ({"patterns": [{"name": "x", "regex": "(?<=a)b"}]},
         "patterns[0].regex: not a valid RE2 regular expression: invalid perl operator: (?<"),
        ({"patterns": [{"name": "x", "regex": "a*"}]},
         "patterns[0].regex: matches the empty string"),
        ({"patterns": [{"name": "email", "regex": "x"}]},
         "patterns[0].name: 'email' is a built-in category"),
        ({"patterns": [{"name": "Emp", "regex": "x"}]},
         "patterns[0].name: 'Emp' is not a category name"),
        ({"patterns": [{"name": "emp", "regex": "x"}],
          "denyLists": [{"name": "emp", "terms": ["y"]}]},
         "denyLists[0].name: 'emp' is already defined by patterns[0]"),
        ({"rules": [{"categories": ["phone"], "action": "audit"}], "phoneRegions": ["ZZ"]},
         "phoneRegions: phonenumbers knows no region ZZ"),
        ({"rules": [{"categories": ["email"], "action": "audit",
                     "when": {"locations": ["Europe"]}}]},
         "'Europe' is not a country code"),
        ({"denyLists": [{"name": "d", "terms": []}]}, "denyLists.0.terms"),
    ],
)  # fmt: skip
def test_bad_rules_say_what_and_where(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        rules(data)
    assert message in str(err.value)
