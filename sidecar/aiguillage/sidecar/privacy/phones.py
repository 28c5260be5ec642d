"""Phone numbers, in international and national formats, confirmed by ``phonenumbers``.

A cheap pattern finds windows of digits and the separators phone numbers are written with;
``phonenumbers.PhoneNumberMatcher`` (leniency VALID: the number must be valid for its
country, not merely possible) then reads the numbers in each window. Only windows shaped
like a phone number reach it:

- international numbers (``+33 6 12 34 56 78``, ``0049 30 1234567``) are taken whenever
  they are valid;
- a national number is valid in some country for almost any 9 or 10 digits, so one is taken
  only when it is written like a phone number — a trunk prefix (``06 12 34 56 78``,
  ``030 1234567``), an area code in brackets, digits in groups — or named ("tel",
  "phone", "Telefon"...) just before it. A bare ``612345678`` is an order number until
  something says otherwise. Dates, times and amounts (``1 250 000``) are never numbers.

National formats are tried for the rules' ``phoneRegions``, most populous countries first.
phonenumbers is imported when rules that look for phones are compiled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiguillage.sidecar.privacy.detectors import (
    Detector,
    Spans,
    context_before,
    keywords,
    overlaps,
)
from aiguillage.sidecar.privacy.findings import Finding

_WINDOW = re.compile(r"(?<![\w+])(?:\+ ?)?\(?\d[\d\-. ()/]{4,40}\d(?!\w)")
_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(?!\d)|\d{1,2}:\d{2}")
_AMOUNT = re.compile(r"[1-9]\d{0,2}(?:([ .,])\d{3})(?:\1\d{3})*")
_NAMED = keywords(
    "tel", "tél", "phone", "mobile", "cell", "fax", "call", "appel", "portable", "téléphone",
    "telefon", "handy", "ruf", "móvil", "movil", "teléfono", "telefono", "cellulare",
    "chiama", "bel", "gsm", "numer", "nummer", "whatsapp", "sms",
)  # fmt: skip
# Countries tried first for national formats: the largest EU populations.
_PREFERRED = ("DE", "FR", "IT", "ES", "PL", "RO", "NL", "BE", "CZ", "SE", "PT", "GR", "HU", "AT")
_MIN_NATIONAL_DIGITS = 8
_MAX_DIGITS = 17


class PhoneDetector(Detector):
    category = "phone"
    name = "phone"
    triggers = frozenset({"digits"})
    rank = 5
    # Windows inside an IBAN, a card number or an identifier look like phone numbers too:
    # running after the other detectors skips them without asking phonenumbers.
    runs_last = True

    def __init__(self, regions: frozenset[str]) -> None:
        import phonenumbers

        unknown = sorted(r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"phoneRegions: phonenumbers knows no region {', '.join(unknown)}")
        self._pn = phonenumbers
        preferred = [r for r in _PREFERRED if r in regions]
        ordered = preferred + sorted(regions - set(preferred))
        # (region, national prefix, lengths of national numbers): to try a region only
        # when the digits could be one of its numbers (parsing costs ~12 µs per region).
        self._regions: list[tuple[str, str, frozenset[int]]] = []
        for region in ordered:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None or meta.general_desc is None:
                continue
            lengths = frozenset(meta.general_desc.possible_length or ())
            self._regions.append((region, meta.national_prefix or "", lengths))

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        for m in _WINDOW.finditer(text):
            if overlaps(taken, m.start(), m.end()):
                continue
            window = m[0]
            if _DATE.search(window):
                continue
            digits = "".join(ch for ch in window if ch.isdigit())
            if len(digits) > _MAX_DIGITS:
                continue
            if window.startswith("+"):
                region: str | None = self._regions[0][0] if self._regions else "FR"
            elif window.startswith("00"):
                region = self._regions[0][0] if self._regions else "FR"
            else:
                if len(digits) < _MIN_NATIONAL_DIGITS:
                    continue
                if not self._phone_shaped(text, m.start(), window):
                    continue
                region = self._national_region(window, digits)
            if region is not None:
                yield from self._confirm(text, m.start(), window, region)

    def _phone_shaped(self, text: str, start: int, raw: str) -> bool:
        if _AMOUNT.fullmatch(raw):
            return False
        if raw[0] in "0(" or any(not ch.isdigit() for ch in raw):
            return True
        return context_before(text, start, _NAMED, window=24)

    def _national_region(self, window: str, digits: str) -> str | None:
        """The first region where ``window`` is a valid national number."""
        pn = self._pn
        for region, prefix, lengths in self._regions:
            national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
            if len(national) not in lengths and len(digits) not in lengths:
                continue
            try:
                number = pn.parse(window, region)
            except pn.NumberParseException:
                continue
            if pn.is_valid_number(number):
                return region
        return None

    def _confirm(self, text: str, offset: int, window: str, region: str) -> Iterator[Finding]:
        """The numbers PhoneNumberMatcher reads in ``window`` (its checks for dates, times
        and formatting apply), written as phone numbers."""
        pn = self._pn
        for match in pn.PhoneNumberMatcher(window, region, leniency=pn.Leniency.VALID):
            raw = match.raw_string
            start = offset + match.start
            if not (raw.startswith("+") or raw.startswith("00")):
                digits = sum(ch.isdigit() for ch in raw)
                if digits < _MIN_NATIONAL_DIGITS or not self._phone_shaped(text, start, raw):
                    continue
            normal = pn.format_number(match.number, pn.PhoneNumberFormat.E164)
            yield Finding(self.category, self.name, start, start + len(raw), normal)


def build(category: str, phone_regions: frozenset[str]) -> list[Detector]:
    return [PhoneDetector(phone_regions)]
