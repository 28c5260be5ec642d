"""Typed placeholders (``[EMAIL_1]``): one per distinct value in a request, never one the
request already contains.

The same value gets the same placeholder wherever it appears in the request (values are
compared in their normal form: ``+33 6 12 34 56 78`` and ``+33612345678`` are one phone
number), so the model can still reason about "the same person". Numbers count per
category in order of first appearance. A placeholder already written in the request
(a user quoting ``[EMAIL_1]``) is skipped, so what the model answers with can only mean
one thing when the answer is restored.

Placeholders are made of upper-case letters, digits, ``_`` and square brackets: characters
no JSON encoder escapes, so they read the same in decoded text and in encoded JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")


def label(category: str) -> str:
    return category.upper()


class Placeholders:
    def __init__(self, texts: Iterable[str]) -> None:
        self._taken: set[str] = set()
        for text in texts:
            if "[" in text:
                self._taken.update(PLACEHOLDER.findall(text))
        self._assigned: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def of(self, category: str, normal: str) -> str:
        """The placeholder of this value (the same one each time it is asked for)."""
        key = (category, normal)
        found = self._assigned.get(key)
        if found is None:
            n = self._counts.get(category, 0)
            while True:
                n += 1
                found = f"[{label(category)}_{n}]"
                if found not in self._taken:
                    break
            self._counts[category] = n
            self._assigned[key] = found
        return found
