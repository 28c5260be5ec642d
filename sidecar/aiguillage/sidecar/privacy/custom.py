"""The policy's own categories: custom patterns and literal deny lists, compiled by RE2.

Policies are written by people and run on every request in the sidecar's event loop, so a
pattern must not be able to stall it: both kinds are compiled once by Google's RE2
(``google-re2``), whose matching time is linear in the text whatever the pattern (no
backreferences, no look-around, no backtracking). A deny list becomes one alternation that
RE2 runs as an automaton, so ten thousand terms cost about what one does. Terms match as
whole words, checked with Python's Unicode-aware notion of a letter (RE2's ``\\b`` knows
only ASCII).

RE2 is imported when rules with patterns or deny lists are validated or compiled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aiguillage.sidecar.privacy.detectors import Detector, Spans
from aiguillage.sidecar.privacy.findings import Finding
from aiguillage.sidecar.privacy.rules import CustomPattern, DenyList

# Compiled automata may use this much memory each (RE2's default is 8 MiB).
_MAX_MEM = 32 << 20


def compile_re2(pattern: str, *, case_sensitive: bool, longest: bool = False) -> Any:
    """``pattern`` compiled by RE2; ValueError with RE2's reason when it is not valid."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print its own copy of the error on stderr
    options.case_sensitive = case_sensitive
    options.longest_match = longest
    options.max_mem = _MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(f"not a valid RE2 regular expression: {reason}") from None


class PatternDetector(Detector):
    """A custom category found by a regular expression."""

    rank = 7

    def __init__(self, spec: CustomPattern) -> None:
        self.category = spec.name
        self.name = f"pattern:{spec.name}"
        self._regex = compile_re2(spec.regex, case_sensitive=spec.case_sensitive)

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        for m in self._regex.finditer(text):
            start, end = m.span()
            if end > start:
                yield Finding(self.category, self.name, start, end, m.group())


class DenyListDetector(Detector):
    """A custom category of literal terms, matched as whole words (leftmost-longest)."""

    rank = 7

    def __init__(self, spec: DenyList) -> None:
        self.category = spec.name
        self.name = f"denyList:{spec.name}"
        self._fold = not spec.case_sensitive
        terms = sorted(set(spec.terms), key=len, reverse=True)
        alternation = "|".join(re.escape(t) for t in terms)
        self._regex = compile_re2(alternation, case_sensitive=spec.case_sensitive, longest=True)

    def find(self, text: str, taken: Spans = ()) -> Iterator[Finding]:
        for m in self._regex.finditer(text):
            start, end = m.span()
            if _word_edge(text, start - 1) and _word_edge(text, end):
                value = m.group()
                yield Finding(
                    self.category, self.name, start, end, value.casefold() if self._fold else value
                )


def _word_edge(text: str, i: int) -> bool:
    """Whether position ``i`` is outside ``text`` or holds no letter, digit or underscore."""
    return i < 0 or i >= len(text) or not (text[i].isalnum() or text[i] == "_")
