"""Phone numbers, in international and national formats, confirmed by ``phonenumbers``.

A cheap pattern finds windows of digits and the separators phone numbers are written with;
``phonenumbers.PhoneNumberMatcher`` then reads the numbers in each window, with a leniency
that depends on how much the writing itself says:

- international numbers (``+33 6 12 34 56 78``, ``0049 30 1234567``): leniency VALID (valid
  for their country, not merely possible);
- national numbers written in groups after a trunk prefix (``06 12 34 56 78``,
  ``(04107) 82943``): STRICT_GROUPING, the groups must be those of the country's format;
  without a trunk prefix (``508 860 845`` in Poland, which has none): EXACT_GROUPING, they
  must be exactly the country's groups — this turns away ``Ticket 3127-9719``;
- a national number written as one run of digits, or in groups but with eight digits or
  fewer: almost any such number is valid somewhere in Europe, so it is taken (leniency
  VALID) only when named just before ("tel", "phone", "Telefon", "móvil"...);
  ``0612345678`` alone is an order number. A number introduced as a reference ("Order #",
  "Ticket", "Rechnung Nr.", "Ref.") is not read as a phone number unless named one too.

Dates, times and amounts (``1 250 000``) are never read as numbers. National formats are
tried for the rules' ``phoneRegions``, most populous countries first, and only where the
number of digits fits the country's plan. phonenumbers is imported when rules that look for
phones are compiled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from aiguillage.sidecar.privacy.detectors import (
    Detector,
    Spans,
    context_before,
    keywords,
    overlaps,
)
from aiguillage.sidecar.privacy.findings import Finding

# Not right after a letter or digit, nor after one joined by a dash, slash or dot
# ("INV-2024-000123" holds no phone number).
# (The look-behinds come after the first character: see detectors._IPV4.)
_WINDOW = re.compile(r"[+(\d](?<![\w+][+(\d])(?<!\w[-/.][+(\d])[\d\-. ()/]{5,42}(?<=\d)(?!\w)")
_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(?!\d)|\d{1,2}:\d{2}")
# 1 250 000, 12.345.678: a first group of one or two digits, then groups of three.
_AMOUNT = re.compile(r"[1-9]\d?(?:([ .'])\d{3})(?:\1\d{3})*")
_NAMED = keywords(
    r"tel\.?", "tél", "phone", "mobile", "cell", "fax", "call", "appel(?:er|ez)?", "portable",
    "téléphone", "telefon", "telefonnummer", "handy", "móvil", "movil", "teléfono", "telefono",
    "cellulare", "chiama(?:mi|re)?", "bel", "gsm", "numer telefonu", "telefoonnummer",
    "whatsapp", "sms",
)  # fmt: skip
# A number introduced as a reference is not a phone number (unless also named one).
_REFERENCE = re.compile(
    r"(?i)(?:#|\bn[o°º]\.?|\bnr\.?|\bref\.?|\bid|ticket|case|docket|order|invoice|commande"
    r"|bestell\w*|rechnung|sendung\w*|tracking|sku|item|pedido|factura|ordine|fattura"
    r"|zamówien\w*|faktur\w*|bestelling|factuur)\W{0,3}$"
)
# Countries tried first for national formats: the largest EU populations.
_PREFERRED = ("DE", "FR", "IT", "ES", "PL", "RO", "NL", "BE", "CZ", "SE", "PT", "GR", "HU", "AT")
_MIN_NATIONAL_DIGITS = 8
# Eight digits in two groups (MT, EE: "2100 1234") are as often a ticket number.
_MIN_UNNAMED_DIGITS = 9
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
        self._numbers = functools.lru_cache(maxsize=4096)(self._read)

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
            if window.startswith(("+", "00")):
                named = False
            else:
                if len(digits) < _MIN_NATIONAL_DIGITS or _AMOUNT.fullmatch(window):
                    continue
                named = context_before(text, m.start(), _NAMED, window=24)
                if not named:
                    grouped = any(not ch.isdigit() for ch in window)
                    if not grouped or len(digits) < _MIN_UNNAMED_DIGITS:
                        continue  # a bare run of digits is an order number until named
                    if _REFERENCE.search(text, max(0, m.start() - 16), m.start()):
                        continue
            for start, end, normal in self._numbers(window, named):
                yield Finding(self.category, self.name, m.start() + start, m.start() + end, normal)

    def _read(self, window: str, named: bool) -> tuple[tuple[int, int, str], ...]:
        """The numbers in ``window`` (offsets in it, E.164): what :meth:`find` caches, as
        texts repeat the same numbers and parsing one costs tens of microseconds per
        country tried."""
        pn = self._pn
        if window.startswith(("+", "00")):
            first = self._regions[0][0] if self._regions else "FR"
            if self._valid_in(window, first):  # 12 µs, before a 40 µs matcher
                return self._confirm(window, first, pn.Leniency.VALID)
            return ()
        digits = "".join(ch for ch in window if ch.isdigit())
        for region, prefix in self._possible_regions(window, digits):
            if named:
                leniency = pn.Leniency.VALID
            elif prefix and digits.startswith(prefix):
                # Groups after a trunk prefix: those of the country's own format.
                leniency = pn.Leniency.STRICT_GROUPING
            else:
                # No trunk prefix to go by: the groups must be exactly the country's.
                leniency = pn.Leniency.EXACT_GROUPING
            found = self._confirm(window, region, leniency)
            if found:
                return found
        return ()

    def _possible_regions(self, window: str, digits: str) -> Iterator[tuple[str, str]]:
        """Regions (and their trunk prefix) where ``window`` parses as a valid number, in
        order of preference."""
        for region, prefix, lengths in self._regions:
            national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
            if len(national) not in lengths and len(digits) not in lengths:
                continue
            if self._valid_in(window, region):
                yield region, prefix

    def _valid_in(self, window: str, region: str) -> bool:
        pn = self._pn
        try:
            return bool(pn.is_valid_number(pn.parse(window, region)))
        except pn.NumberParseException:
            return False

    def _confirm(self, window: str, region: str, leniency: Any) -> tuple[tuple[int, int, str], ...]:
        """The numbers PhoneNumberMatcher reads in ``window`` at ``leniency`` (its checks for
        dates, times and formatting apply)."""
        pn = self._pn
        out = []
        for match in pn.PhoneNumberMatcher(window, region, leniency=leniency):
            raw = match.raw_string
            national = not raw.startswith(("+", "00"))
            if national and sum(ch.isdigit() for ch in raw) < _MIN_NATIONAL_DIGITS:
                continue
            normal = pn.format_number(match.number, pn.PhoneNumberFormat.E164)
            out.append((match.start, match.start + len(raw), normal))
        return tuple(out)


def build(category: str, phone_regions: frozenset[str]) -> list[Detector]:
    return [PhoneDetector(phone_regions)]
