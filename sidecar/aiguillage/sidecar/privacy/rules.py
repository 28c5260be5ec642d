"""Data-protection rules: which personal data to look for, and what to do with it per target.

This is the compiled form the sidecar reads (``Route.data_protection``) and, field for field,
the shape of ``AIPolicy.spec.dataProtection`` and of ``aiguillage scan --rules``::

    rules:                                   # every rule that matches a target applies;
    - categories: [email, phone, iban]       # for each category the strictest action wins
      action: audit
    - categories: [email, phone, iban]
      action: pseudonymise
      when: {notJurisdictions: [EU]}         # only toward targets outside the EU
    - categories: [payment_card, national_id, codenames]
      action: block
    patterns:                                # custom categories (RE2 syntax: linear time)
    - {name: employee_id, regex: 'EMP-[0-9]{6}'}
    denyLists:                               # literal terms, whole words
    - {name: codenames, terms: [Bluebird, Nightjar], caseSensitive: false}
    phoneRegions: [FR, DE, ES]               # national phone formats to recognise (default:
                                             # the EEA, Switzerland and the United Kingdom)

Actions, from least to most strict: ``audit`` (count), ``pseudonymise`` (a placeholder is
sent, the original is put back in the answer), ``redact`` (a placeholder is sent and stays),
``block`` (the request is not sent to that target). Because the strictest matching action
wins, rules only ever tighten: several policies combine by concatenating their rules
(:meth:`DataProtectionRules.combine`), and a route's own rules can add to a policy's but
never loosen them. A category no rule names is not looked for at all (it costs nothing).

``when`` selects targets by where they process data (``locations``) and who operates them
(``jurisdictions``); group names (EU, EEA) are expanded to countries. A target whose
location or jurisdiction is unknown is outside every set: it matches ``notLocations`` /
``notJurisdictions`` and never ``locations`` / ``jurisdictions``, so the unknown is
treated as the stricter case.

Importing this module costs only pydantic: detectors and their libraries are loaded by
:mod:`aiguillage.sidecar.privacy.engine` when rules are compiled.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from aiguillage.sidecar.residency import EEA, UnknownRegionError, expand


class Action(StrEnum):
    """What happens to a finding; declared from least to most strict."""

    AUDIT = "audit"
    PSEUDONYMISE = "pseudonymise"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {action: rank for rank, action in enumerate(Action)}

# Categories the sidecar detects itself; policies may add their own (patterns, deny lists).
BUILTIN_CATEGORIES: tuple[str, ...] = (
    "email",
    "phone",
    "iban",
    "vat",
    "national_id",
    "payment_card",
    "ip_address",
)
DEFAULT_PHONE_REGIONS: frozenset[str] = EEA | {"CH", "GB"}
_CATEGORY_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_PATTERN_LENGTH = 1000
MAX_TERMS = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


def _countries(value: object) -> object:
    """Group names and country codes to a set of countries (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise ValueError("must be a list of country codes or groups (EU, EEA)")
    try:
        return expand(str(v) for v in value)
    except UnknownRegionError as exc:
        raise ValueError(str(exc)) from None


class TargetSelector(_Model):
    """Which targets a rule applies to: every condition given must hold."""

    locations: frozenset[str] | None = None
    not_locations: frozenset[str] | None = None
    jurisdictions: frozenset[str] | None = None
    not_jurisdictions: frozenset[str] | None = None

    @field_validator(
        "locations", "not_locations", "jurisdictions", "not_jurisdictions", mode="before"
    )
    @classmethod
    def _expand(cls, value: object) -> object:
        return _countries(value)

    @field_serializer("locations", "not_locations", "jurisdictions", "not_jurisdictions")
    def _sorted(self, value: frozenset[str] | None) -> list[str] | None:
        # Sorted so that the config's content hash is stable across processes.
        return None if value is None else sorted(value)

    def matches(self, location: str | None, jurisdiction: str | None) -> bool:
        place = (location or "").upper()
        operator = (jurisdiction or "").upper()
        return (
            (self.locations is None or place in self.locations)
            and (self.not_locations is None or place not in self.not_locations)
            and (self.jurisdictions is None or operator in self.jurisdictions)
            and (self.not_jurisdictions is None or operator not in self.not_jurisdictions)
        )


CategoryName = Annotated[str, Field(min_length=1, max_length=40)]


class Rule(_Model):
    """One action for some categories, toward the targets ``when`` selects (all if absent)."""

    categories: Annotated[tuple[CategoryName, ...], Field(min_length=1)]
    action: Action
    when: TargetSelector | None = None
    # Who imposed the rule (e.g. "AIPolicy eu-gdpr"), set by the operator; named in refusals.
    source: str = ""


class CustomPattern(_Model):
    """A category of the policy's own, found by a regular expression in RE2 syntax."""

    name: CategoryName
    regex: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_LENGTH)]
    case_sensitive: bool = True


class DenyList(_Model):
    """A category of the policy's own: literal terms, matched as whole words."""

    name: CategoryName
    terms: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=200)], ...],
        Field(min_length=1, max_length=MAX_TERMS),
    ]
    case_sensitive: bool = False


class DataProtectionRules(_Model):
    """Everything the data-protection engine of one route needs (see the module docstring)."""

    rules: tuple[Rule, ...] = ()
    patterns: tuple[CustomPattern, ...] = ()
    deny_lists: tuple[DenyList, ...] = ()
    phone_regions: frozenset[str] = DEFAULT_PHONE_REGIONS

    @field_validator("phone_regions", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        return _countries(value)

    @field_serializer("phone_regions")
    def _sorted(self, value: frozenset[str]) -> list[str]:
        return sorted(value)

    @model_validator(mode="after")
    def _consistent(self) -> DataProtectionRules:
        custom: dict[str, str] = {}
        names = [(f"patterns[{i}]", p.name) for i, p in enumerate(self.patterns)]
        names += [(f"denyLists[{i}]", d.name) for i, d in enumerate(self.deny_lists)]
        for where, name in names:
            if not _CATEGORY_NAME.fullmatch(name):
                raise ValueError(
                    f"{where}.name: {name!r} is not a category name "
                    "(lower case letters, digits and _, starting with a letter)"
                )
            if name in BUILTIN_CATEGORIES:
                raise ValueError(
                    f"{where}.name: {name!r} is a built-in category; choose another name"
                )
            if name in custom:
                raise ValueError(f"{where}.name: {name!r} is already defined by {custom[name]}")
            custom[name] = where
        for i, pattern in enumerate(self.patterns):
            problem = regex_problem(pattern.regex)
            if problem:
                raise ValueError(f"patterns[{i}].regex: {problem}")
        if "phone" in self.categories:
            problem = phone_regions_problem(self.phone_regions)
            if problem:
                raise ValueError(f"phoneRegions: {problem}")
        known = set(BUILTIN_CATEGORIES) | set(custom)
        for i, rule in enumerate(self.rules):
            for j, category in enumerate(rule.categories):
                if category not in known:
                    raise ValueError(
                        f"rules[{i}].categories[{j}]: unknown category {category!r}; known: "
                        + ", ".join(sorted(known))
                    )
        return self

    def combine(self, other: DataProtectionRules) -> DataProtectionRules:
        """Both sets of rules at once: for every category and target the strictest wins.

        A custom category defined by both must be defined identically (else ValueError)."""
        patterns = {p.name: p for p in self.patterns}
        deny_lists = {d.name: d for d in self.deny_lists}
        for p in other.patterns:
            if patterns.setdefault(p.name, p) != p:
                raise ValueError(f"pattern {p.name!r} is defined twice, differently")
        for d in other.deny_lists:
            if deny_lists.setdefault(d.name, d) != d:
                raise ValueError(f"deny list {d.name!r} is defined twice, differently")
        return DataProtectionRules(
            rules=self.rules + other.rules,
            patterns=tuple(patterns.values()),
            deny_lists=tuple(deny_lists.values()),
            phone_regions=self.phone_regions | other.phone_regions,
        )

    @cached_property
    def categories(self) -> frozenset[str]:
        """The categories some rule acts on: the only ones worth looking for."""
        return frozenset(c for rule in self.rules for c in rule.categories)

    def action_for(
        self, category: str, location: str | None, jurisdiction: str | None
    ) -> tuple[Action, Rule] | None:
        """The strictest action any rule takes on ``category`` toward this target, and the
        rule that decided it; None when no rule applies."""
        best: tuple[Action, Rule] | None = None
        for rule in self.rules:
            if category not in rule.categories:
                continue
            if rule.when is not None and not rule.when.matches(location, jurisdiction):
                continue
            if best is None or rule.action.strictness > best[0].strictness:
                best = (rule.action, rule)
        return best


def phone_regions_problem(regions: frozenset[str]) -> str | None:
    """Regions phonenumbers has no numbering plan for (it is imported: phones are wanted)."""
    import phonenumbers

    unknown = sorted(regions - phonenumbers.SUPPORTED_REGIONS)
    return f"phonenumbers knows no region {', '.join(unknown)}" if unknown else None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable RE2 expression, or None.

    Custom patterns run on every request in the sidecar's event loop, so they are compiled
    by RE2, whose matching time is linear in the text whatever the pattern (no backtracking).
    RE2 is imported only when a policy has patterns."""
    from aiguillage.sidecar.privacy.custom import compile_re2

    try:
        compiled = compile_re2(pattern, case_sensitive=True)
    except ValueError as exc:
        return str(exc)
    if compiled.search("") is not None:
        return "matches the empty string; a pattern must match at least one character"
    return None
