"""The per-request residency headers (``residency_headers.py``)."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.residency import EU, UnknownRegionError
from aiguillage.sidecar.residency_headers import from_headers


def test_no_headers_no_rule() -> None:
    assert from_headers(None, None) is None
    assert from_headers("", "") is None


def test_location_header() -> None:
    rule = from_headers("EU", None)
    assert rule is not None
    assert rule.locations == EU
    assert rule.jurisdictions is None
    assert rule.source == "request headers"


def test_lists_with_spaces_and_case() -> None:
    rule = from_headers(" fr, de ,", "eu")
    assert rule is not None
    assert rule.locations == {"FR", "DE"}
    assert rule.jurisdictions == EU


@pytest.mark.parametrize("value", ["Europe", "FR;DE", "F R"])
def test_invalid_values_raise(value: str) -> None:
    with pytest.raises(UnknownRegionError):
        from_headers(value, None)
