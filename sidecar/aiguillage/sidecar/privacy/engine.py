"""The data-protection engine: compiled rules, applied to one request for one target.

How the request path uses it (:mod:`aiguillage.sidecar.protection`, per request and per
attempt)::

    engine = route.protection                      # compiled once per loaded config, or None
    scan = engine.scan(call.operation, call.body)  # once per request: detection
    for each attempt at a target:
        try:
            protected = scan.apply(location=..., jurisdiction=...)
        except PersonalDataBlocked as blocked:     # this target may not receive it:
            ...                                    # skip it (like residency), 400 if none may
        send dataclasses.replace(call, body=protected.body)
        answer: protected.restorer.body(raw) / protected.restorer.stream() when not None
        audit and metrics: protected.summary.as_audit_dict(), .metric_labels()

Detection does not depend on the target, so it runs once; the actions do (pseudonymise
toward non-EU targets only, say), so :meth:`RequestScan.apply` runs per attempt, on the
original body each time: it never modifies it and returns a copy sharing everything it
did not change. Placeholders are chosen at scan time, so every attempt of a request uses
the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiguillage.sidecar.privacy.errors import PersonalDataBlocked
from aiguillage.sidecar.privacy.fields import (
    REQUEST_FIELDS,
    Path,
    Slot,
    all_strings,
    strings,
    with_values,
)
from aiguillage.sidecar.privacy.findings import Finding, FindingsSummary
from aiguillage.sidecar.privacy.placeholders import Placeholders
from aiguillage.sidecar.privacy.restore import Restorer
from aiguillage.sidecar.privacy.rules import Action, DataProtectionRules, Rule
from aiguillage.sidecar.privacy.textscan import TextScanner, detectors_for


@dataclass(frozen=True, slots=True)
class Located:
    """A finding and the string of the request it is in."""

    slot: Slot
    finding: Finding

    @property
    def value(self) -> str:
        return self.slot.text[self.finding.start : self.finding.end]


@dataclass(frozen=True, slots=True)
class Protected:
    """One attempt's request as the target may receive it.

    ``body`` is the original body itself when nothing had to change (do not modify it);
    ``restorer`` is None unless something was pseudonymised."""

    body: dict[str, Any]
    restorer: Restorer | None
    summary: FindingsSummary


class DataProtectionEngine:
    """Rules compiled into detectors: build once per loaded config (imports the libraries
    the rules need), use for every request."""

    def __init__(self, rules: DataProtectionRules) -> None:
        self.rules = rules
        self.scanner = TextScanner(detectors_for(rules))

    def find(self, text: str) -> list[Finding]:
        """The personal data in a plain text, in order."""
        return self.scanner.find(text)

    def scan(self, operation: str, body: dict[str, Any]) -> RequestScan:
        """Find the personal data in the fields of ``body`` the provider would read
        (see :data:`~aiguillage.sidecar.privacy.fields.REQUEST_FIELDS`)."""
        specs = REQUEST_FIELDS.get(str(operation))
        if specs is None:
            raise ValueError(f"no scanned fields are defined for operation {operation!r}")
        located = [
            Located(slot, finding)
            for slot in strings(body, specs)
            for finding in self.scanner.find(slot.text)
        ]
        return RequestScan(self.rules, str(operation), body, located)

    def apply(
        self,
        operation: str,
        body: dict[str, Any],
        *,
        location: str | None,
        jurisdiction: str | None,
    ) -> Protected:
        """:meth:`scan` then :meth:`RequestScan.apply`, for one target."""
        return self.scan(operation, body).apply(location=location, jurisdiction=jurisdiction)


class RequestScan:
    """What one request holds; :meth:`apply` turns it into what one target may receive."""

    def __init__(
        self,
        rules: DataProtectionRules,
        operation: str,
        body: dict[str, Any],
        located: list[Located],
    ) -> None:
        self.rules = rules
        self.operation = operation
        self.body = body
        self.located = located
        self._placeholders: Placeholders | None = None

    def placeholder(self, located: Located) -> str:
        if self._placeholders is None:
            self._placeholders = Placeholders(all_strings(self.body))
            for each in self.located:  # numbered in order of appearance, whatever the target
                self._placeholders.of(each.finding.category, each.finding.normal)
        return self._placeholders.of(located.finding.category, located.finding.normal)

    def apply(self, *, location: str | None, jurisdiction: str | None) -> Protected:
        """The request for a target at ``location`` operated under ``jurisdiction``.

        Raises PersonalDataBlocked when a ``block`` rule applies to something found."""
        decided: dict[str, tuple[Action, Rule] | None] = {}
        summary = FindingsSummary()
        acted: list[tuple[Located, Action]] = []
        blocked: dict[str, Rule] = {}
        for each in self.located:
            category = each.finding.category
            if category not in decided:
                decided[category] = self.rules.action_for(category, location, jurisdiction)
            decision = decided[category]
            if decision is None:
                continue
            action, rule = decision
            summary.add(category, action)
            if action is Action.BLOCK:
                blocked[category] = rule
            elif action is not Action.AUDIT:
                acted.append((each, action))
        if blocked:
            sources = sorted({r.source for r in blocked.values() if r.source})
            raise PersonalDataBlocked(sorted(blocked), location, jurisdiction, sources, summary)
        if not acted:
            return Protected(self.body, None, summary)
        originals: dict[str, str] = {}
        by_slot: dict[Path, list[tuple[Located, str]]] = {}
        for each, action in acted:
            placeholder = self.placeholder(each)
            by_slot.setdefault(each.slot.path, []).append((each, placeholder))
            if action is Action.PSEUDONYMISE:
                originals.setdefault(placeholder, each.value)
        edits: dict[Path, str] = {}
        for path, replacements in by_slot.items():
            text = replacements[0][0].slot.text
            parts: list[str] = []
            end = 0
            for each, placeholder in sorted(replacements, key=lambda r: r[0].finding.start):
                parts.append(text[end : each.finding.start])
                parts.append(placeholder)
                end = each.finding.end
            parts.append(text[end:])
            edits[path] = "".join(parts)
        restorer = Restorer(self.operation, originals) if originals else None
        return Protected(with_values(self.body, edits), restorer, summary)
