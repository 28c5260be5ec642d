"""The value-free summary that goes to the audit record and the metrics."""

from __future__ import annotations

from aiguillage.sidecar.privacy.findings import FindingsSummary
from aiguillage.sidecar.privacy.rules import Action


def test_counts_per_category_and_action_for_audit_and_metrics() -> None:
    summary = FindingsSummary()
    assert not summary
    summary.add("email", Action.PSEUDONYMISE)
    summary.add("email", Action.PSEUDONYMISE)
    summary.add("iban", Action.AUDIT)
    assert summary.total == 3
    assert summary.as_audit_dict() == {"email": {"pseudonymise": 2}, "iban": {"audit": 1}}
    assert summary.metric_labels() == [
        ((("category", "email"), ("action", "pseudonymise")), 2),
        ((("category", "iban"), ("action", "audit")), 1),
    ]
    assert summary.categories(Action.AUDIT) == ["iban"]
