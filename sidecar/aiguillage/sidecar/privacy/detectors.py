"""What a detector is, the cheap triggers that decide which detectors run, and the detectors
that need no library: e-mail addresses, IP addresses and payment card numbers.

A detector finds one category of personal data in one text. It declares the *triggers*
(keys of :data:`TRIGGERS`) without which it cannot match; :mod:`.textscan` runs one combined
search for the triggers of every enabled detector and skips the detectors whose triggers
are absent, so a text without personal data costs one regular-expression pass.

Every candidate pattern here is linear in the text: no nested unbounded repetition, starts
anchored by a look-behind so that a match is only tried at the start of a run, and
bounded repetitions. Candidates are then confirmed by code (a checksum, an IIN range, the
``ipaddress`` module), which is what keeps false positives down.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from aiguillage.sidecar.privacy.findings import Finding

# Cheap signs that some detector could match; each starts with '@', ':' or a digit so that
# the combined search skips ordinary prose quickly.
TRIGGERS: dict[str, str] = {
    "at": "@",
    # six digits, at most two separators between two: ids, phones, IBANs, cards, VATs
    "digits": r"\d(?:[ .\-/()]{0,2}\d){5}",
    "dotted": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d",
    "colon": r":(?::|[0-9A-Fa-f]{1,4}:)",
    # the middle of an Italian codice fiscale: 2 digits, month letter, 2 digits, letter
    "cf": r"\d[0-9LMNPQRSTUV][A-EHLMPRSTa-ehlmprst][0-9LMNPQRSTUV]{2}[A-Za-z]",
}


class Detector(ABC):
    """Finds one category of personal data in a text."""

    category: str
    # Which detector this is, finer than the category ("fr.nir"); shown by `aiguillage scan`.
    name: str
    # Keys of TRIGGERS, one of which must be in a text for this detector to match; empty:
    # always run (custom patterns, deny lists).
    triggers: frozenset[str] = frozenset()
    # Among overlapping findings of equal length, the lowest rank wins.
    rank: int = 5
    # Run after the others and skip what they found (see :meth:`find`'s ``taken``).
    runs_last: bool = False

    @abstractmethod
    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        """Every confirmed occurrence in ``text``, in any order, possibly overlapping.

        ``taken``: spans other detectors found, sorted by start; only a detector that
        ``runs_last`` gets them, and may skip candidates overlapping them."""


Spans = Sequence[tuple[int, int]]


def overlaps(spans: Spans, start: int, end: int) -> bool:
    """Whether [start, end) overlaps one of ``spans`` (sorted by start, not overlapping)."""
    i = bisect.bisect_left(spans, (start, start))
    if i > 0 and spans[i - 1][1] > start:
        return True
    return i < len(spans) and spans[i][0] < end


def context_before(text: str, start: int, keywords: re.Pattern[str], window: int = 48) -> bool:
    """Whether one of ``keywords`` is in the ``window`` characters before ``start``."""
    return keywords.search(text, max(0, start - window), start) is not None


def keywords(*words: str) -> re.Pattern[str]:
    """A case-insensitive pattern finding any of ``words`` as whole words."""
    return re.compile(r"(?i)\b(?:" + "|".join(words) + r")(?![^\W\d_])")


# -- e-mail ------------------------------------------------------------------------------

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}[^\W\d_]{2,24}(?![\w-])", re.UNICODE)


class EmailDetector(Detector):
    """Addresses found from their '@': the local part is read backwards (64 characters at
    most) and the domain forwards, so a long run of letters without '@' costs nothing."""

    category = "email"
    name = "email"
    triggers = frozenset({"at"})
    rank = 0

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        at = text.find("@")
        while at != -1:
            start = at
            while start > 0 and at - start < 64:
                ch = text[start - 1]
                if ch in _LOCAL_CHARS or (ch.isalnum() and not ch.isascii()):
                    start -= 1
                else:
                    break
            local = text[start:at]
            domain = _DOMAIN.match(text, at + 1)
            end = at + 1
            if (
                domain is not None
                and local
                and not local.startswith(".")
                and not local.endswith(".")
                and ".." not in local
            ):
                end = domain.end()
                value = text[start:end]
                yield Finding(self.category, self.name, start, end, value.lower())
            at = text.find("@", end)


# -- IP addresses ------------------------------------------------------------------------

# Patterns start with a character class and check what precedes their first character
# with a look-behind placed after it: Python's re then skips to candidates at C speed
# (a leading look-behind made them several times slower on prose).
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\d)")
# Two colons within the first ten characters, so that words made of a-f fail fast.
_IPV6 = re.compile(
    r"[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{0,34}"
    r"(?:\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)"
)
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|release|build|ver\.?|v)\s*$")


def _identifies_a_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Loopback, 0.0.0.0, multicast and reserved addresses name no one: they fill code
    # snippets and configs, and counting them would drown the real findings.
    return not (
        address.is_loopback or address.is_unspecified or address.is_multicast or address.is_reserved
    )


class IpAddressDetector(Detector):
    """IPv4 and IPv6 addresses, confirmed by :mod:`ipaddress`; version numbers ("version
    4.8.1.0") and addresses that identify no host (loopback, 0.0.0.0...) are left alone."""

    category = "ip_address"
    name = "ip_address"
    triggers = frozenset({"dotted", "colon"})
    rank = 6

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        v6_spans: list[tuple[int, int]] = []
        if ":" in text:
            for finding in self._v6(text):
                v6_spans.append((finding.start, finding.end))
                yield finding
        for m in _IPV4.finditer(text):
            if overlaps(v6_spans, m.start(), m.end()):
                continue  # the IPv4 part of ::ffff:192.0.2.1
            if _VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start()):
                continue
            try:
                v4 = ipaddress.IPv4Address(m[0])
            except ValueError:
                continue
            if _identifies_a_host(v4):
                yield Finding(self.category, self.name, m.start(), m.end(), str(v4))

    def _v6(self, text: str) -> Iterator[Finding]:
        for m in _IPV6.finditer(text):
            candidate = m[0]
            groups = [g for g in re.split(r"[:.]", candidate) if g]
            if candidate.count(":") < 2 or len(groups) < 3:
                continue
            try:
                v6 = ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            mapped = v6.ipv4_mapped
            if _identifies_a_host(mapped if mapped is not None else v6):
                yield Finding(self.category, self.name, m.start(), m.end(), v6.compressed)


# -- payment cards -----------------------------------------------------------------------

_CARD = re.compile(r"\d(?<![\w.,-]\d)(?:[ -]?\d){11,18}(?!\w|[.,-]\d)")
# (first digits low, high, lengths): issuer identification number ranges of the networks.
_IIN_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    # Visa (its old 13-digit numbers are no longer issued and look like EAN-13 codes)
    (4, 4, frozenset({16, 19})),
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (300, 305, frozenset({14, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (2131, 2131, frozenset({15})),
    (1800, 1800, frozenset({15})),
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
    (5018, 5018, frozenset(range(12, 20))),  # Maestro
    (5020, 5020, frozenset(range(12, 20))),
    (5038, 5038, frozenset(range(12, 20))),
    (5893, 5893, frozenset(range(12, 20))),
    (6304, 6304, frozenset(range(12, 20))),
    (6759, 6759, frozenset(range(12, 20))),
    (6761, 6763, frozenset(range(12, 20))),
)
# How card numbers are grouped when written with separators.
_CARD_GROUPINGS = frozenset(
    {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 3), (4, 4, 4, 4, 2),
     (4, 4, 4, 4, 1), (4, 4, 5), (4, 4, 4, 2), (4, 4, 4, 1)}
)  # fmt: skip


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def issued_length(digits: str) -> bool:
    """Whether ``digits`` starts with a card network's IIN and has one of its lengths."""
    for low, high, lengths in _IIN_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


class PaymentCardDetector(Detector):
    """Card numbers: a network's IIN range and length, the Luhn checksum, and, when written
    with separators, one separator character in a grouping cards are printed with."""

    category = "payment_card"
    name = "payment_card"
    triggers = frozenset({"digits"})
    rank = 4

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        for m in _CARD.finditer(text):
            raw = m[0]
            separators = {ch for ch in raw if not ch.isdigit()}
            if len(separators) > 1:
                continue
            if separators:
                groups = tuple(len(g) for g in raw.split(separators.pop()))
                if groups not in _CARD_GROUPINGS:
                    continue
            digits = "".join(ch for ch in raw if ch.isdigit())
            if issued_length(digits) and luhn_valid(digits):
                yield Finding(self.category, self.name, m.start(), m.end(), digits)


def build(category: str, phone_regions: frozenset[str]) -> list[Detector]:
    """The detectors of ``category`` defined in this module."""
    return [BY_CATEGORY[category]()]


BY_CATEGORY: dict[str, type[Detector]] = {
    d.category: d for d in (EmailDetector, IpAddressDetector, PaymentCardDetector)
}
