"""What the validating webhook says (admission.py): policies refuse in Enforce mode and
warn in Audit mode; a policy the sidecar could not apply is refused."""

from __future__ import annotations

from typing import Any

from aiguillage.operator.admission import policy_review, route_review
from tests.operator.test_policies import EU_ONLY, policy, world
from tests.operator.test_render import route


def review_route(*policies: dict[str, Any]) -> Any:
    return route_review(world(*policies), "apps", route("new", "new", "eu", "us"))


def test_an_enforce_policy_refuses_the_route_naming_itself_and_the_field() -> None:
    review = review_route(EU_ONLY)
    assert review.problems == [
        'spec.targets[1]: provider "us" is located in US, outside AIPolicy eu-only '
        "residency.locations [EU]"
    ]


def test_an_audit_policy_admits_with_a_warning() -> None:
    audit = policy("eu-audit", mode="Audit", residency={"locations": ["EU"]})
    review = review_route(audit)
    assert review.problems == []
    assert review.warnings == [
        'spec.targets[1]: provider "us" is located in US, outside AIPolicy eu-audit '
        "residency.locations [EU] (AIPolicy eu-audit is in Audit mode: admitted, and recorded "
        "whenever it is used)"
    ]


def test_a_policy_is_refused_when_the_sidecar_could_not_apply_it() -> None:
    body = policy(
        "bad", dataProtection={"rules": [{"categories": ["passport"], "action": "block"}]}
    )
    review = policy_review(world(), body)
    assert len(review.problems) == 1
    assert review.problems[0].startswith(
        "spec.dataProtection.rules[0].categories[0]: unknown category 'passport'"
    )


def test_a_new_policy_warns_of_the_targets_it_takes_out_of_existing_routes() -> None:
    assert policy_review(world(), EU_ONLY).warnings == [
        'AIRoute apps/chat: spec.targets[2]: provider "us" is located in US, outside AIPolicy '
        "eu-only residency.locations [EU] (this target will no longer be used)"
    ]
    elsewhere = policy(
        "other", {"matchLabels": {"data": "public"}}, residency={"locations": ["EU"]}
    )
    assert policy_review(world(), elsewhere).warnings == []
