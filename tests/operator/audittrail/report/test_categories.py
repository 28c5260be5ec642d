"""``categories.py``: outcomes the report knows, and those it does not know yet."""

from __future__ import annotations

import pytest

from aiguillage.operator.audittrail.report import categories as c


@pytest.mark.parametrize(
    ("outcome", "status", "expected"),
    [
        ("ok", 200, c.SERVED),
        ("client_closed", 200, c.SERVED),
        ("answered_by_sidecar", 200, c.SERVED),
        ("no_compliant_target", 503, c.RESIDENCY),
        ("all_targets_failed", 502, c.PROVIDERS),
        ("upstream_rate_limited", 429, c.PROVIDERS),  # the providers', not ours
        ("rejected", 400, c.CLIENT),
        ("blocked_personal_data", 400, c.DATA_PROTECTION),
        # Outcomes of later sidecars, known by their words or their status:
        ("budget_exceeded", 429, c.LIMIT),
        ("rate_limited", 429, c.LIMIT),
        ("limit_store_unavailable", 503, c.LIMIT),
        ("sidecar_throttled", 429, c.LIMIT),
        ("personal_data_blocked", 400, c.DATA_PROTECTION),
        ("forbidden_content", 451, c.DATA_PROTECTION),
        ("something_new", 500, c.OTHER),
    ],
)
def test_category(outcome: str, status: int, expected: str) -> None:
    assert c.category(outcome, status) == expected


def test_refusals_are_the_rules_categories() -> None:
    assert [x for x in (c.RESIDENCY, c.LIMIT, c.DATA_PROTECTION, c.PROVIDERS, c.SERVED)
            if c.is_refusal(x)] == [c.RESIDENCY, c.LIMIT, c.DATA_PROTECTION]  # fmt: skip
