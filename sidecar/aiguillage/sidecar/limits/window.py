"""Requests and tokens per minute, counted in a sliding window over two calendar minutes.

Each calendar minute (Unix time // 60, :func:`~aiguillage.sidecar.limits.keys.minute`) has
a counter. A request costing ``amount`` (1 request, or its estimated tokens) is let through
when::

    previous × (1 − elapsed) + current + amount ≤ limit

``elapsed`` being the fraction of the current minute gone by: the previous minute counts for
the part of it still inside the last 60 seconds, as if its requests had been spread evenly
(the "sliding window counter" of Cloudflare's and Redis's rate limiters). It needs two
integers per window and one atomic script, where an exact window would keep every request's
time.

Tolerance, as stated in the README: counting itself is exact across sidecars (one atomic
update in the shared store), and within one calendar minute no more than ``limit`` is let
through. Over an arbitrary 60-second span the estimate is exact when the previous minute's
traffic was even; with all of it bunched at that minute's end, up to twice the limit can pass
in the worst case (as with a fixed window), and under steady load the error is a few percent.
"""

from __future__ import annotations

SECONDS = 60


def weight(now: float) -> float:
    """How much of the previous minute still lies inside the 60 seconds before ``now``."""
    return 1.0 - (now % SECONDS) / SECONDS


def level(previous: float, current: float, weight_: float) -> float:
    """How much of the limit is used at the moment of ``weight_``."""
    return previous * weight_ + current


def fits(previous: float, current: float, weight_: float, amount: int, limit: int) -> bool:
    return level(previous, current, weight_) + amount <= limit


def wait(previous: float, current: float, now: float, amount: int, limit: int) -> float | None:
    """Seconds until ``amount`` fits if nothing else is counted meanwhile; None: never
    (``amount`` alone is more than ``limit``)."""
    if amount > limit:
        return None
    elapsed = (now % SECONDS) / SECONDS
    room = limit - current - amount
    if room >= 0:
        if previous <= 0 or previous * (1 - elapsed) <= room:
            return 0.0
        return (1 - room / previous - elapsed) * SECONDS
    # Not in this minute: in the next one, this minute is the previous one.
    next_room = limit - amount
    return (1 - elapsed) * SECONDS + max(0.0, 1 - next_room / current) * SECONDS
