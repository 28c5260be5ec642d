"""Request headers (``httpserver/headers.py``): case-insensitive, several values per name."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.httpserver import Headers

HEADERS = Headers([("host", "a"), ("x-loc", "FR"), ("x-loc", "DE"), ("authorization", "sk-1")])


def test_names_are_case_insensitive_and_the_first_value_wins() -> None:
    assert HEADERS["Host"] == HEADERS.get("HOST") == "a"
    assert HEADERS.get("X-Loc") == "FR"
    assert "X-LOC" in HEADERS
    assert "missing" not in HEADERS
    assert HEADERS.get("missing") is None
    assert HEADERS.get("missing", "d") == "d"


def test_getall_keeps_every_value_in_order() -> None:
    assert HEADERS.getall("X-Loc") == ["FR", "DE"]
    assert HEADERS.getall("missing", []) == []
    with pytest.raises(KeyError):
        HEADERS.getall("missing")


def test_its_repr_shows_names_never_values() -> None:
    assert "sk-1" not in repr(HEADERS)
    assert "authorization" in repr(HEADERS)
