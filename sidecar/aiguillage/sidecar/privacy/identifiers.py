"""Identifiers with check digits, confirmed by ``python-stdnum``: national identifiers, IBANs
and VAT numbers.

One row of :data:`IDENTIFIERS` per kind: a cheap candidate pattern (linear: anchored by a
look-behind, bounded repetitions), the stdnum module that validates it (check digits,
dates of birth, lengths per country), and how much the checksum alone can be trusted.

How often a random digit string of the right length passes the stdnum check (measured on
20,000 draws) decides whether a kind needs more evidence. Kinds that let 1 in 10 through
(Dutch BSN, Austrian VNR, Croatian OIB) or whose numbers look like any order number
(Polish PESEL) are accepted only with one of their names in the 48
characters before them ("BSN", "PESEL"...) or in a written form only they use
(``1234.56.782`` for a BSN). The others (French NIR, German IdNr, Belgian NN, Romanian CNP,
Estonian code: at most 1 in 100 and mostly 1 in 300 or less) and every kind with letters
in it are accepted on their checksum alone. (Lithuanian personal codes follow the Estonian
algorithm and are found as ``ee.ik``.)

stdnum is imported when rules that need these categories are compiled, never before.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiguillage.sidecar.privacy.detectors import Detector, Spans, context_before, keywords
from aiguillage.sidecar.privacy.findings import Finding

_E = r"(?!\w|[.,]\d)"  # ends a candidate: not followed by a word character or more digits


def _starts(first: str, rest: str, before: str = r"[\w.]") -> str:
    """A candidate starting with one ``first`` character not preceded by ``before`` (not
    inside a word or a dotted number). The look-behind comes after the first character so
    that the pattern starts with a character class, which Python's ``re`` skips to at C
    speed; starting with the look-behind made each pattern about three times slower."""
    return f"{first}(?<!{before}{first}){rest}"


@dataclass(frozen=True)
class Identifier:
    kind: str  # country.module, as in stdnum ("fr.nir")
    category: str
    pattern: str
    # Names of the identifier; required before the candidate when ``weak``.
    context: tuple[str, ...] = ()
    weak: bool = False
    # A written form distinctive enough to stand without context even when ``weak``.
    strong_form: str | None = None
    # stdnum module, when it differs from the kind.
    module: str | None = None
    triggers: frozenset[str] = frozenset({"digits"})
    # Drop trailing space-separated groups when the whole candidate is invalid (IBAN, VAT
    # written in groups may be followed by an upper-case word: "... 7890 189 EUR").
    shrink: bool = False


_VAT_PREFIXES = (
    "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|GR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI"
)

IDENTIFIERS: tuple[Identifier, ...] = (
    Identifier(
        "iban",
        "iban",
        _starts("[A-Z]", r"[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}(?!\w)", before=r"\w"),
        module="iban",
        shrink=True,
    ),
    Identifier(
        "eu.vat",
        "vat",
        rf"[A-Z]{{2}}(?<!\w[A-Z]{{2}})(?<={_VAT_PREFIXES})"
        r" ?[0-9A-Z](?:[ .\-]?[0-9A-Z]){7,13}(?!\w)",
        shrink=True,
    ),
    Identifier(
        "fr.nir",
        "national_id",
        _starts(r"[12]", r" ?\d{2} ?\d{2} ?(?:\d{2}|2[ABab]) ?\d{3} ?\d{3} ?\d{2}") + _E,
    ),
    Identifier(
        "de.idnr",
        "national_id",
        _starts(r"\d", r"\d ?\d{3} ?\d{3} ?\d{3}") + _E,
    ),
    Identifier("es.dni", "national_id", _starts(r"\d", r"\d{7}[ -]?[A-Za-z]") + r"(?!\w)"),
    Identifier(
        "es.nie", "national_id", _starts("[XYZxyz]", r"[ -]?\d{7}[ -]?[A-Za-z](?!\w)", r"\w")
    ),
    Identifier(
        "it.codicefiscale",
        "national_id",
        "(?i)"
        + _starts(
            "[A-Z]",
            r"[A-Z]{5}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z]"
            r"[0-9LMNPQRSTUV]{3}[A-Z](?!\w)",
            r"\w",
        ),
        triggers=frozenset({"cf"}),
    ),
    Identifier(
        "nl.bsn",
        "national_id",
        _starts(r"\d", r"\d{3}[ .]?\d{2}[ .]?\d{3}") + _E,
        context=("bsn", "burgerservicenummer", "sofi-?nummer", "citizen service number"),
        weak=True,
        strong_form=r"\d{4}\.\d{2}\.\d{3}",
    ),
    Identifier(
        "be.nn",
        "national_id",
        _starts(r"\d", r"\d[ .]?\d{2}[ .]?\d{2}[ .\-]?\d{3}[ .]?\d{2}") + _E,
    ),
    Identifier(
        "pl.pesel",
        "national_id",
        _starts(r"\d", r"\d{10}") + _E,
        context=("pesel",),
        weak=True,
    ),
    Identifier(
        "fi.hetu", "national_id", _starts(r"\d", r"\d{5}[-+A-FU-Ya-fu-y]\d{3}[0-9A-Ya-y](?!\w)")
    ),
    Identifier(
        "se.personnummer",
        "national_id",
        _starts(r"\d", r"(?:\d{2})?\d{5}[-+]\d{4}") + _E,
    ),
    Identifier("ie.pps", "national_id", _starts(r"\d", r"\d{6}[A-Wa-w][A-IWa-iw]?(?!\w)")),
    Identifier("pt.cc", "national_id", _starts(r"\d", r"\d{7} ?\d ?[A-Za-z]{2}\d(?!\w)")),
    Identifier("ro.cnp", "national_id", _starts(r"[1-9]", r"\d{12}") + _E),
    Identifier(
        "at.vnr",
        "national_id",
        _starts(r"\d", r"\d{3} ?\d{6}") + _E,
        context=("svnr", "vsnr", r"(?:sozial)?versicherungsnummer", "sv-nummer"),
        weak=True,
    ),
    Identifier("cz.rc", "national_id", _starts(r"\d", r"\d{5}/\d{3,4}") + _E),
    Identifier(
        "hr.oib",
        "national_id",
        _starts(r"\d", r"\d{10}") + _E,
        context=("oib",),
        weak=True,
    ),
    Identifier("ee.ik", "national_id", _starts(r"[1-6]", r"\d{10}") + _E),
)


class IdentifierDetector(Detector):
    """One kind of identifier: candidates from its pattern, confirmed by stdnum."""

    def __init__(self, spec: Identifier) -> None:
        self.spec = spec
        self.category = spec.category
        self.name = spec.kind
        self.triggers = spec.triggers
        self.rank = {"iban": 1, "vat": 2}.get(spec.category, 3)
        module = importlib.import_module(f"stdnum.{spec.module or spec.kind}")
        self._valid: Callable[[str], bool] = module.is_valid
        self._compact: Callable[[str], str] = module.compact
        self._pattern = re.compile(spec.pattern)
        self._context = keywords(*spec.context) if spec.context else None
        self._strong = re.compile(spec.strong_form) if spec.strong_form else None

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        for m in self._pattern.finditer(text):
            start, end = m.span()
            raw = m[0]
            if self.spec.shrink:
                found = self._longest_valid(raw)
                if found is None:
                    continue
                raw = found
                end = start + len(raw)
            elif not self._valid(raw):
                continue
            if self.spec.weak and not self._evident(text, start, raw):
                continue
            yield Finding(self.category, self.name, start, end, self._compact(raw))

    def _longest_valid(self, raw: str) -> str | None:
        for _ in range(4):
            if self._valid(raw):
                return raw
            cut = raw.rfind(" ")
            if cut <= 4:
                return None
            raw = raw[:cut]
        return None

    def _evident(self, text: str, start: int, raw: str) -> bool:
        if self._strong is not None and self._strong.fullmatch(raw):
            return True
        return self._context is not None and context_before(text, start, self._context)


def build(category: str, phone_regions: frozenset[str]) -> list[Detector]:
    """The detectors of ``category`` (iban, vat or national_id): stdnum is imported here."""
    return [IdentifierDetector(spec) for spec in IDENTIFIERS if spec.category == category]
