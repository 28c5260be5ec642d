"""The per-request residency headers, which can only narrow a route's rule."""

from __future__ import annotations

from aiguillage.sidecar.residency import ResidencyRule, UnknownRegionError

LOCATION_HEADER = "x-aiguillage-residency"
JURISDICTION_HEADER = "x-aiguillage-jurisdiction"


def from_headers(location: str | None, jurisdiction: str | None) -> ResidencyRule | None:
    """The rule the request's headers ask for, or None if it sets neither header.

    Raises UnknownRegionError on a value that is not a country code or group.
    """
    if not location and not jurisdiction:
        return None
    return ResidencyRule.parse(
        _split(location) if location else None,
        _split(jurisdiction) if jurisdiction else None,
        "request headers",
    )


def _split(value: str) -> list[str]:
    return [v for v in (p.strip() for p in value.split(",")) if v]


__all__ = ["JURISDICTION_HEADER", "LOCATION_HEADER", "UnknownRegionError", "from_headers"]
