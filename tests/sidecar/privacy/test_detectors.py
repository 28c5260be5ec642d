"""E-mail, IP address and payment card detectors: what they find, what they leave alone."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.privacy.detectors import (
    EmailDetector,
    IpAddressDetector,
    PaymentCardDetector,
    luhn_valid,
)


def values(
    detector: EmailDetector | IpAddressDetector | PaymentCardDetector, text: str
) -> list[str]:
    return [text[f.start : f.end] for f in detector.find(text)]


def test_emails_are_read_around_their_at_sign() -> None:
    text = (
        "Write to Jean.Dupont+cv@mairie-paris.fr. or élodie@exemple.fr; not @decorator, a@localhost"
    )
    assert values(EmailDetector(), text) == ["Jean.Dupont+cv@mairie-paris.fr", "élodie@exemple.fr"]
    found = next(EmailDetector().find("X@Example.COM"))
    assert found.normal == "x@example.com"  # one person, however it is cased


def test_a_long_run_without_at_sign_is_not_scanned_character_by_character() -> None:
    assert values(EmailDetector(), "a" * 200_000 + "@") == []
    assert values(EmailDetector(), "@" * 100_000) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server 192.0.2.44 answered", ["192.0.2.44"]),
        ("from 10.1.2.3.", ["10.1.2.3"]),
        ("loopback 127.0.0.1, any 0.0.0.0, multicast 224.0.0.1", []),
        ("requires version 4.8.1.0 and v1.2.3.4", []),
        ("OID 1.3.6.1.4.1 and 300.1.1.1", []),
        ("client 2001:db8:85a3::8a2e:370:7334 then fe80::1:2",
         ["2001:db8:85a3::8a2e:370:7334", "fe80::1:2"]),
        ("at 12:30:00, std::vector, ::1, a::b", []),
        ("mapped ::ffff:192.0.2.1 here", ["::ffff:192.0.2.1"]),
    ],
)  # fmt: skip
def test_ip_addresses(text: str, expected: list[str]) -> None:
    assert values(IpAddressDetector(), text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", ["4111 1111 1111 1111"]),
        ("card 4111-1111-1111-1111", ["4111-1111-1111-1111"]),
        ("amex 3782 822463 10005", ["3782 822463 10005"]),
        ("visa 4111111111111111.", ["4111111111111111"]),
        ("mixed 4111 1111-1111 1111", []),  # two different separators
        ("grouped oddly 41111 11111 11111 1", []),
        ("luhn fails 4111 1111 1111 1112", []),
        ("no network 9111 1111 1111 1117", []),
        ("EAN 4006381333931", []),  # 13 digits: Visa no longer issues those
    ],
)
def test_payment_cards(text: str, expected: list[str]) -> None:
    assert values(PaymentCardDetector(), text) == expected


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
