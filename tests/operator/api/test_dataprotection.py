"""The CRD's dataProtection mirrors the sidecar's rules model field for field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from aiguillage.operator.api import dataprotection as crd
from aiguillage.sidecar.privacy import rules as sidecar

PAIRS = [
    (crd.DataProtectionSpec, sidecar.DataProtectionRules),
    (crd.DataProtectionRule, sidecar.Rule),
    (crd.TargetSelector, sidecar.TargetSelector),
    (crd.CustomPattern, sidecar.CustomPattern),
    (crd.DenyList, sidecar.DenyList),
]


def aliases(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


@pytest.mark.parametrize(("mirror", "model"), PAIRS, ids=lambda m: m.__name__)
def test_every_field_of_one_is_a_field_of_the_other(
    mirror: type[BaseModel], model: type[BaseModel]
) -> None:
    # "source" is set by the operator (the policy or route a rule comes from).
    assert aliases(mirror) == aliases(model) - {"source"}


FULL: dict[str, Any] = {
    "rules": [
        {"categories": ["email", "codenames"], "action": "pseudonymise",
         "when": {"notJurisdictions": ["EU"], "locations": ["EEA"]}},
        {"categories": ["employee_id"], "action": "block"},
    ],
    "patterns": [{"name": "employee_id", "regex": "EMP-[0-9]{6}", "caseSensitive": False}],
    "denyLists": [{"name": "codenames", "terms": ["Bluebird"], "caseSensitive": True}],
    "phoneRegions": ["FR", "DE"],
}  # fmt: skip


def test_a_spec_compiles_to_the_same_rules_the_sidecar_reads_directly() -> None:
    compiled = crd.DataProtectionSpec.model_validate(FULL).compile("AIPolicy p")
    direct = sidecar.DataProtectionRules.model_validate(
        {**FULL, "rules": [{**r, "source": "AIPolicy p"} for r in FULL["rules"]]}
    )
    assert compiled == direct


def test_audit_only_turns_every_action_into_audit_and_says_what_it_would_do() -> None:
    compiled = crd.DataProtectionSpec.model_validate(FULL).compile("AIPolicy p", audit_only=True)
    assert [(r.action, r.source) for r in compiled.rules] == [
        (sidecar.Action.AUDIT, "AIPolicy p (Audit mode: would pseudonymise)"),
        (sidecar.Action.AUDIT, "AIPolicy p (Audit mode: would block)"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rules": [{"categories": ["passport"], "action": "block"}]},
         "rules[0].categories[0]: unknown category 'passport'"),
        ({"patterns": [{"name": "email", "regex": "x"}]},
         "patterns[0].name: 'email' is a built-in category"),
        ({"patterns": [{"name": "empty", "regex": "a*"}]},
         "patterns[0].regex: matches the empty string"),
    ],
)  # fmt: skip
def test_what_only_the_sidecar_can_check_is_reported_with_its_field(
    change: dict[str, Any], message: str
) -> None:
    spec = crd.DataProtectionSpec.model_validate(change)
    with pytest.raises(ValueError, match=r"^" + message.replace("[", r"\[").replace("]", r"\]")):
        spec.compile("AIPolicy p")
