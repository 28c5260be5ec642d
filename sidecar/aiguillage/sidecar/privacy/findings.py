"""What the detectors found, and the value-free summary that leaves the engine.

A :class:`Finding` holds where a piece of personal data is in one text and its normalised
value (so that the same person gets the same placeholder however the value was written);
findings stay inside the engine and the offline ``aiguillage scan``. What the audit record
and the metrics get is a :class:`FindingsSummary`: counts per category and action, never a
value, a span or a field path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiguillage.sidecar.privacy.rules import Action

MetricLabels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of personal data in one text: ``text[start:end]``."""

    category: str
    # Which detector found it, e.g. "email", "fr.nir", "pattern": finer than the category.
    detector: str
    start: int
    end: int
    # The value written one canonical way (E.164 phone, compact IBAN, lower-case e-mail).
    normal: str


@dataclass(slots=True)
class FindingsSummary:
    """Counts per (category, action) for one attempt: what the audit record and /metrics get."""

    counts: Counter[tuple[str, Action]] = field(default_factory=Counter)

    def add(self, category: str, action: Action, n: int = 1) -> None:
        self.counts[(category, action)] += n

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def categories(self, action: Action | None = None) -> list[str]:
        """Sorted categories found (with ``action``, if given)."""
        return sorted({c for c, a in self.counts if action is None or a is action})

    def as_audit_dict(self) -> dict[str, dict[str, int]]:
        """``{"email": {"pseudonymise": 2}, "iban": {"audit": 1}}``, keys sorted."""
        out: dict[str, dict[str, int]] = {}
        for (category, action), n in sorted(self.counts.items()):
            out.setdefault(category, {})[action.value] = n
        return out

    def metric_labels(self) -> list[tuple[MetricLabels, int]]:
        """Label pairs and counts for a counter such as
        ``aiguillage_data_protection_findings_total{category, action}``. Cardinality is bounded
        by the categories of the loaded rules times four actions."""
        return [
            ((("category", category), ("action", action.value)), n)
            for (category, action), n in sorted(self.counts.items())
        ]
