"""Where data may be processed: country groups and the compliance test.

A provider has one ``location`` (where inference runs) and one ``jurisdiction``
(legal home of its operator). A :class:`ResidencyRule` restricts either or both
to a set of countries. Rules combine by intersection and can only ever narrow:
the route's rule, every policy's rule and the request's headers are all applied.
A provider with no residency data complies with no rule.

This module is shared by the sidecar (checked before every attempt) and the
operator (status conditions, admission, ``aiguillage explain``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

EU: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }
)  # fmt: skip
EEA: frozenset[str] = EU | {"IS", "LI", "NO"}
GROUPS: dict[str, frozenset[str]] = {"EU": EU, "EEA": EEA}
# A location meaning "any region in the world" (a global endpoint or inference profile).
ANYWHERE = "GLOBAL"
# A location that cannot be known (e.g. a Bedrock application inference profile): it
# complies with no rule restricting locations.
UNKNOWN = "UNKNOWN"


class UnknownRegionError(ValueError):
    """A residency entry is neither an ISO 3166-1 alpha-2 code nor a known group."""


def expand(codes: Iterable[str]) -> frozenset[str]:
    """Turn country codes and group names (``EU``, ``EEA``) into a set of countries."""
    out: set[str] = set()
    for raw in codes:
        code = raw.strip().upper()
        if code in GROUPS:
            out |= GROUPS[code]
        elif len(code) == 2 and code.isalpha() and code.isascii():
            out.add(code)
        else:
            raise UnknownRegionError(
                f"{raw!r} is not a country code (ISO 3166-1 alpha-2) or a group (EU, EEA)"
            )
    return frozenset(out)


@dataclass(frozen=True)
class ResidencyRule:
    """Allowed countries for processing; ``None`` on a dimension means unrestricted."""

    locations: frozenset[str] | None = None
    jurisdictions: frozenset[str] | None = None
    # Human-readable origin of each restriction, for status messages and audit.
    source: str = ""

    @classmethod
    def parse(
        cls,
        locations: Iterable[str] | None = None,
        jurisdictions: Iterable[str] | None = None,
        source: str = "",
    ) -> ResidencyRule:
        return cls(
            None if locations is None else expand(locations),
            None if jurisdictions is None else expand(jurisdictions),
            source,
        )

    @property
    def unrestricted(self) -> bool:
        return self.locations is None and self.jurisdictions is None

    def narrow(self, other: ResidencyRule) -> ResidencyRule:
        """The intersection of two rules: a target must satisfy both."""
        return ResidencyRule(
            _meet(self.locations, other.locations),
            _meet(self.jurisdictions, other.jurisdictions),
            " ∩ ".join(s for s in (self.source, other.source) if s),
        )

    def violation(self, location: str | None, jurisdiction: str | None) -> str | None:
        """Why a provider at (location, jurisdiction) breaks this rule, or None if it complies."""
        if self.locations is not None:
            if not location:
                return "has no declared location"
            place = location.upper()
            if place == ANYWHERE:
                return "may process data in any region (global endpoint or profile)"
            if place == UNKNOWN:
                return "processes data in a place that cannot be known from its configuration"
            if place in GROUPS:
                # Somewhere in a group: complies only if the whole group is allowed.
                if not GROUPS[place] <= self.locations:
                    where = describe(self.locations)
                    return f"may process data anywhere in {place}, outside locations {where}"
            elif len(place) != 2:
                # Another multi-country geography (a Bedrock apac. profile...): rules list
                # countries only, so it never complies.
                where = describe(self.locations)
                return f"may process data anywhere in {place}, outside locations {where}"
            elif place not in self.locations:
                where = describe(self.locations)
                return f"is located in {place}, outside locations {where}"
        if self.jurisdictions is not None:
            if not jurisdiction:
                return "has no declared jurisdiction"
            if jurisdiction.upper() not in self.jurisdictions:
                return (
                    f"is under jurisdiction {jurisdiction.upper()}, "
                    f"outside jurisdictions {describe(self.jurisdictions)}"
                )
        return None

    def complies(self, location: str | None, jurisdiction: str | None) -> bool:
        return self.violation(location, jurisdiction) is None

    def as_dict(self) -> dict[str, list[str] | None]:
        return self._as_dict

    @cached_property
    def _as_dict(self) -> dict[str, list[str] | None]:
        return {
            "locations": None if self.locations is None else sorted(self.locations),
            "jurisdictions": None if self.jurisdictions is None else sorted(self.jurisdictions),
        }


UNRESTRICTED = ResidencyRule()


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def describe(countries: frozenset[str]) -> str:
    """Short form of a country set, naming the groups it equals: ``[EU]``, ``[EU, CH]``."""
    if not countries:
        return "[] (no country is allowed by every rule in force)"
    rest = set(countries)
    names: list[str] = []
    for name in ("EEA", "EU"):
        if GROUPS[name] <= rest:
            names.append(name)
            rest -= GROUPS[name]
    return "[" + ", ".join(names + sorted(rest)) + "]"
