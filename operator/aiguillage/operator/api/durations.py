"""Kubernetes-style durations (``100ms``, ``5s``, ``2m``, ``1h30m``) to seconds."""

from __future__ import annotations

import re

PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming the expected form."""
    if not re.fullmatch(PATTERN, text):
        raise ValueError(f"{text!r} is not a duration such as 250ms, 5s, 2m or 1h30m")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
