"""The per-request residency headers, which can only narrow a route's rule.

``x-aiguillage-residency`` (allowed locations) and ``x-aiguillage-jurisdiction`` (allowed
jurisdictions) each hold a comma-separated list of country codes or groups (EU, EEA). A header
sent several times is read as every instance applying at once: the allowed countries are the
intersection of the instances, never the union and never only the first or last one (a
proxy or a library adding its own instance can only narrow). An instance with no value
(empty, or only commas and spaces) is invalid: it would otherwise read as "unrestricted".
"""

from __future__ import annotations

from collections.abc import Sequence

from aiguillage.sidecar.residency import ResidencyRule, UnknownRegionError, expand

LOCATION_HEADER = "x-aiguillage-residency"
JURISDICTION_HEADER = "x-aiguillage-jurisdiction"


class InvalidResidencyHeader(ValueError):
    """A residency header that names no region, or something that is not a region."""


def from_headers(locations: Sequence[str], jurisdictions: Sequence[str]) -> ResidencyRule | None:
    """The rule every instance of the request's headers asks for, or None if it sets neither.

    ``locations`` and ``jurisdictions`` are all the values of each header, in order.
    Raises InvalidResidencyHeader naming the header and what is wrong with it.
    """
    if not locations and not jurisdictions:
        return None
    rule = ResidencyRule(source="request headers")
    for value in locations:
        rule = rule.narrow(ResidencyRule(_codes(LOCATION_HEADER, value), None))
    for value in jurisdictions:
        rule = rule.narrow(ResidencyRule(None, _codes(JURISDICTION_HEADER, value)))
    return rule


def _codes(header: str, value: str) -> frozenset[str]:
    """The countries one instance of ``header`` allows."""
    codes = [v for v in (p.strip() for p in value.split(",")) if v]
    if not codes:
        raise InvalidResidencyHeader(
            f"{header} is empty: name at least one country code or group (EU, EEA), "
            "or leave the header out"
        )
    try:
        return expand(codes)
    except UnknownRegionError as exc:
        raise InvalidResidencyHeader(f"{header}: {exc}") from None


__all__ = ["JURISDICTION_HEADER", "LOCATION_HEADER", "InvalidResidencyHeader", "from_headers"]
