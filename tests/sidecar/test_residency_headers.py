"""The per-request residency headers (``residency_headers.py``): every instance narrows."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.residency import EU
from aiguillage.sidecar.residency_headers import InvalidResidencyHeader, from_headers


def test_no_headers_no_rule() -> None:
    assert from_headers([], []) is None


def test_location_header() -> None:
    rule = from_headers(["EU"], [])
    assert rule is not None
    assert rule.locations == EU
    assert rule.jurisdictions is None
    assert rule.source == "request headers"


def test_lists_with_spaces_and_case() -> None:
    rule = from_headers([" fr, de ,"], ["eu"])
    assert rule is not None
    assert rule.locations == {"FR", "DE"}
    assert rule.jurisdictions == EU


def test_every_instance_of_a_header_applies() -> None:
    # Sent twice (a proxy adding its own): only what both allow, never the union.
    rule = from_headers(["EU", "FR, US"], ["EU", "FR,DE"])
    assert rule is not None
    assert rule.locations == {"FR"}
    assert rule.jurisdictions == {"FR", "DE"}


def test_instances_that_share_nothing_allow_nothing() -> None:
    rule = from_headers(["US", "FR"], [])
    assert rule is not None
    assert rule.locations == frozenset()
    assert not rule.complies("US", "US")
    assert not rule.complies("FR", "FR")


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
@pytest.mark.parametrize("which", ["location", "jurisdiction"])
def test_an_empty_instance_is_invalid_not_unrestricted(value: str, which: str) -> None:
    headers = ([value], []) if which == "location" else ([], [value])
    with pytest.raises(InvalidResidencyHeader, match="is empty"):
        from_headers(*headers)
    # also when another instance is fine
    headers = (["EU", value], []) if which == "location" else ([], ["EU", value])
    with pytest.raises(InvalidResidencyHeader, match="is empty"):
        from_headers(*headers)


@pytest.mark.parametrize("value", ["Europe", "FR;DE", "F R"])
def test_invalid_values_raise_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidResidencyHeader, match="x-aiguillage-residency"):
        from_headers([value], [])
    with pytest.raises(InvalidResidencyHeader, match="x-aiguillage-jurisdiction"):
        from_headers([], [value])
