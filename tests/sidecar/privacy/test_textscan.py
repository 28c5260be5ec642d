"""One text: the trigger pre-filter, overlaps, and time linear in the text (no catastrophic
backtracking) on inputs built to hurt regular expressions."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiguillage.sidecar.privacy.detectors import TRIGGERS, Detector, Spans
from aiguillage.sidecar.privacy.findings import Finding
from aiguillage.sidecar.privacy.textscan import TextScanner

from .conftest import audit_everything, found


class Spy(Detector):
    category = "spy"
    name = "spy"
    triggers = frozenset({"digits"})

    def __init__(self) -> None:
        self.calls = 0

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        self.calls += 1
        return iter(())


def test_a_text_without_triggers_runs_no_detector() -> None:
    spy = Spy()
    scanner = TextScanner([spy])
    scanner.find("A long letter about nothing personal at all. " * 1000)
    assert spy.calls == 0
    scanner.find("Order 123456")
    assert spy.calls == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789 .-/()@:abcdefABCDEFLMx+", max_size=60))
def test_re2_trigger_set_agrees_with_pythons_re(text: str) -> None:
    scanner = TextScanner(audit_everything().scanner.detectors)
    expected = {name for name, pattern in TRIGGERS.items() if re.search(pattern, text, re.ASCII)}
    assert scanner.triggers_in(text) == expected


def test_overlapping_findings_keep_the_longest() -> None:
    # The IBAN's digits hold a valid-looking phone number and card-like runs.
    text = "IBAN FR82 1390 9960 3082 4628 1948 219 and mail a.b@c.fr"
    assert found(text) == [("iban", "FR82 1390 9960 3082 4628 1948 219"), ("email", "a.b@c.fr")]


ADVERSARIAL = {
    "digits": "1" * 1_000_000,
    "grouped digits": "12 " * 330_000,
    "dotted digits": "1." * 500_000,
    "at signs": "@" * 1_000_000,
    "local parts": ("a" * 63 + "@") * 15_000,
    "domain without tld": "a@" + "b." * 450_000,
    "colons": ":" * 1_000_000,
    "hex and colons": "a:" * 500_000,
    "phone-like": "+33 6 12 34 56 7x " * 50_000,
    "codice fiscale middle": "12M34Z" * 160_000,
    "upper case after IBAN prefix": "FR76 " + "ABCD " * 200_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_inputs_built_to_backtrack_are_scanned_in_linear_time(text: str) -> None:
    # A megabyte takes well under a second when the scan is linear; a quadratic pattern
    # would take hours here. The bound is deliberately loose (shared, slow CI machines).
    started = time.monotonic()
    audit_everything().find(text)
    assert time.monotonic() - started < 60
