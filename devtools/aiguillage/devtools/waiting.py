"""Wait for a condition with a deadline: the only way tests and tools wait."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NotYet(AssertionError):
    """The condition did not hold before the deadline."""


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; return that, or raise NotYet."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except AssertionError as exc:  # a probe may assert, to say why it is not there yet
            last_error, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last: {last_error})" if last_error else ""
            raise NotYet(f"gave up after {timeout}s waiting for {what or probe}{detail}")
        time.sleep(interval)


def answers(url: str, timeout: float = 1.0) -> bool:
    """Does ``url`` answer 200 right now (a readiness probe, for :func:`wait_for`)?"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
