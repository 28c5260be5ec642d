"""Identifiers confirmed by stdnum: one valid example of each kind is found, checksums keep
look-alikes out, and kinds with a weak checksum need their name."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.privacy.identifiers import IDENTIFIERS

from .conftest import engine, found

EVERY_ID = engine({"rules": [{"categories": ["iban", "vat", "national_id"], "action": "audit"}]})

# Valid values (made by aiguillage.devtools.privacy_eval.values, checked by stdnum).
EXAMPLES = {
    "iban": ("FR82 1390 9960 3082 4628 1948 219", "FR9252601815908301661318609"),
    "eu.vat": (
        "DE626018158",
        "FR 69 224 722 926",
        "NL206159778B46",
        "PL9235762208",
        "BE0467751816",
    ),
    "fr.nir": ("219078313705052", "1 68 02 46 042 597 50"),
    "de.idnr": ("50 613 589 526", "92823574168"),
    "es.dni": ("43464097P", "20246633-D"),
    "es.nie": ("Y2530829S",),
    "it.codicefiscale": ("CNTPLA83A43I849H", "sslrmn07p07a376j"),
    "nl.bsn": ("5269.07.411",),
    "be.nn": ("79092540384", "79.09.25-403.84"),
    "fi.hetu": ("060460-057D",),
    "se.personnummer": ("700114-7565",),
    "ie.pps": ("5056461U",),
    "ro.cnp": ("5690911384521",),
    "pt.cc": ("29697329 1 ZX0",),
    "cz.rc": ("855501/5470",),
    "ee.ik": ("35906129204",),
}
# Need their name: bare, they are not taken; named, they are.
WEAK = {
    "nl.bsn": ("BSN", "526907411"),
    "pl.pesel": ("PESEL", "88060626015"),
    "at.vnr": ("SVNR", "7661 100828"),
    "hr.oib": ("OIB", "34026078847"),
}


def test_every_kind_has_an_example() -> None:
    assert {spec.kind for spec in IDENTIFIERS} == EXAMPLES.keys() | WEAK.keys()


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in EXAMPLES.items() for v in vs])
def test_valid_identifiers_are_found_whole(kind: str, value: str) -> None:
    text = f"Le dossier mentionne {value} depuis hier."
    findings = EVERY_ID.find(text)
    assert [text[f.start : f.end] for f in findings] == [value]
    assert findings[0].detector == kind or kind == "eu.vat"


@pytest.mark.parametrize(("name", "value"), WEAK.values())
def test_weak_checksums_need_the_name_of_the_identifier(name: str, value: str) -> None:
    assert found(f"Im Vorgang steht {value}.", EVERY_ID) == []
    assert found(f"Mein {name}: {value}.", EVERY_ID) == [("national_id", value)]


@pytest.mark.parametrize(
    "text",
    [
        "FR82 1390 9960 3082 4628 1948 218",  # IBAN, one digit off
        "DE626018159",  # VAT, check digit off
        "219078313705053",  # NIR, key off
        "43464097Q",  # DNI, wrong letter
        "Order 79092540385",
    ],
)
def test_a_wrong_check_digit_is_not_personal_data(text: str) -> None:
    assert found(text, EVERY_ID) == []


def test_a_grouped_iban_followed_by_an_upper_case_word_keeps_its_own_groups() -> None:
    text = "IBAN FR82 1390 9960 3082 4628 1948 219 EUR account"
    assert found(text, EVERY_ID) == [("iban", "FR82 1390 9960 3082 4628 1948 219")]


def test_the_same_identifier_written_two_ways_has_one_normal_form() -> None:
    a, b = EVERY_ID.find("NN 79.09.25-403.84 or 79092540384")
    assert a.normal == b.normal == "79092540384"
