"""Recall, precision and false positive rate of the detectors on a labelled corpus.

A label is *found* when a finding of its category overlaps it; a finding is *correct* when
it overlaps a label of its category (a finding of another category on a labelled value is
wrong, and the label is missed). The false positive rate is the share of clean texts in
which anything at all was found.

"Structured identifiers with check digits" are the IBAN, VAT, national-id and payment-card
labels, except the bare values of the kinds whose checksum is too weak to stand alone
(:data:`aiguillage.sidecar.privacy.identifiers.IDENTIFIERS` marks them ``weak``): the
detector needs their name before them, by design, and their recall is reported apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiguillage.devtools.privacy_eval.corpus import Label, Sample
from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.findings import Finding
from aiguillage.sidecar.privacy.identifiers import IDENTIFIERS
from aiguillage.sidecar.privacy.rules import BUILTIN_CATEGORIES, Action, DataProtectionRules, Rule

STRUCTURED = ("iban", "vat", "national_id", "payment_card")
WEAK_KINDS = frozenset(spec.kind for spec in IDENTIFIERS if spec.weak)


def everything() -> DataProtectionEngine:
    """An engine looking for every built-in category (action: audit)."""
    rules = DataProtectionRules(rules=(Rule(categories=BUILTIN_CATEGORIES, action=Action.AUDIT),))
    return DataProtectionEngine(rules)


def needs_name(label: Label) -> bool:
    return label.kind in WEAK_KINDS and not label.named


@dataclass
class Evaluation:
    labels: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    # (kind, "named" | "bare") -> labels, found
    kind_labels: Counter[tuple[str, str]] = field(default_factory=Counter)
    kind_found: Counter[tuple[str, str]] = field(default_factory=Counter)
    structured_labels: int = 0
    structured_found: int = 0
    clean_texts: int = 0
    clean_flagged: int = 0
    clean_findings: Counter[str] = field(default_factory=Counter)  # detector -> count
    characters: int = 0

    def recall(self, category: str) -> float:
        return self.found[category] / self.labels[category] if self.labels[category] else 1.0

    def precision(self, category: str) -> float:
        n = self.findings[category]
        return self.correct[category] / n if n else 1.0

    @property
    def structured_recall(self) -> float:
        return self.structured_found / self.structured_labels if self.structured_labels else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.clean_flagged / self.clean_texts if self.clean_texts else 0.0


def _overlap(f: Finding, label: Label) -> bool:
    return f.category == label.category and f.start < label.end and label.start < f.end


def evaluate(
    engine: DataProtectionEngine, with_data: list[Sample], clean: list[Sample]
) -> Evaluation:
    ev = Evaluation()
    for sample in with_data:
        ev.characters += len(sample.text)
        findings = engine.find(sample.text)
        for label in sample.labels:
            hit = any(_overlap(f, label) for f in findings)
            ev.labels[label.category] += 1
            ev.found[label.category] += hit
            form = "named" if label.named else "bare"
            ev.kind_labels[(label.kind, form)] += 1
            ev.kind_found[(label.kind, form)] += hit
            if label.category in STRUCTURED and not needs_name(label):
                ev.structured_labels += 1
                ev.structured_found += hit
        for f in findings:
            ev.findings[f.category] += 1
            ev.correct[f.category] += any(_overlap(f, label) for label in sample.labels)
    for sample in clean:
        ev.characters += len(sample.text)
        findings = engine.find(sample.text)
        ev.clean_texts += 1
        ev.clean_flagged += bool(findings)
        for f in findings:
            ev.findings[f.category] += 1
            ev.clean_findings[f.detector] += 1
    return ev
