"""Phone numbers: international always, national when written or named as phone numbers."""

from __future__ import annotations

import pytest

from .conftest import engine, found

PHONES = engine({"rules": [{"categories": ["phone"], "action": "audit"}]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Appelez le +33 6 12 34 56 78 demain", "+33 6 12 34 56 78"),
        ("ou 0033 6 12 34 56 78", "0033 6 12 34 56 78"),
        ("Büro (04107) 82943, danke", "(04107) 82943"),
        ("fixe 01 42 68 53 00", "01 42 68 53 00"),
        ("biuro 508 860 845", "508 860 845"),
        ("Berlin 030 12345678", "030 12345678"),
        ("tel. 0612345678", "0612345678"),
        ("+31(0)15 8693817", "+31(0)15 8693817"),
    ],
)
def test_phone_numbers_written_as_such_are_found(text: str, expected: str) -> None:
    assert found(text, PHONES) == [("phone", expected)]


@pytest.mark.parametrize(
    "text",
    [
        "Order 0612345678 shipped",  # a bare run of digits: named nothing
        "Ticket 0954-1952 closed",  # groups no country writes
        "Ticket 3127-9719",  # eight digits in two groups
        "Rechnung Nr. 030 123 4567",  # introduced as a reference
        "on 13.06.2024 at 12:30",
        "population 12 345 678",
        "+99 123 456 789",  # no such country code
    ],
)
def test_look_alikes_are_not_phone_numbers(text: str) -> None:
    assert found(text, PHONES) == []


def test_the_same_number_written_two_ways_has_one_normal_form() -> None:
    a, b = PHONES.find("+33 6 12 34 56 78 ou 0033612345678")
    assert a.normal == b.normal == "+33612345678"


def test_phone_regions_limit_national_formats() -> None:
    poland_only = engine(
        {"rules": [{"categories": ["phone"], "action": "audit"}], "phoneRegions": ["PL"]}
    )
    assert found("biuro 508 860 845", poland_only) == [("phone", "508 860 845")]
    assert found("Büro (04107) 82943", poland_only) == []
    assert found("+49 4107 82943", poland_only) == [("phone", "+49 4107 82943")]
