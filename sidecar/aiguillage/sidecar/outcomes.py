"""What the client is told when no target answered: a status its SDK acts on rightly.

SDKs retry some statuses on their own (the openai and anthropic SDKs retry 408, 409, 429 and
every 5xx, twice by default), so the status of a failed request is a promise about what a
retry would do. From the request's attempts (its audit record) :func:`classify` tells apart:

- **unsupported**: no target was contacted because every target the residency allows lacks
  the operation (embeddings on an Anthropic route, token counting on a Gemini one). The same
  request would fail the same way every time, so it is a **400** ``unsupported_operation``,
  never retried. Not a 501: it is the route's targets that cannot serve the operation, and
  SDKs would retry a 501 like any 5xx. Not a 404 either: the route exists.
- **throttled**: every target contacted answered 429 (rate limited) or 529 (overloaded).
  The client gets a **429** (Anthropic clients a **529** ``overloaded_error`` when every
  provider said overloaded, as the Anthropic API would) with ``Retry-After`` and
  ``retry-after-ms`` set to the shortest wait any provider asked for, which the SDKs honour.
- **failed**: anything else: **502** ``all_targets_failed`` with each attempt summarised.

Failures are told apart by outcomes and HTTP statuses only, never by error text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from aiguillage.sidecar.audit import AuditRecord

RATE_LIMITED = 429
OVERLOADED = 529  # Anthropic's "overloaded_error"


@dataclass(frozen=True, slots=True)
class Failure:
    kind: Literal["unsupported", "throttled", "failed"]
    message: str
    # Throttled only: every provider said overloaded (not rate limited).
    overloaded: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def classify(record: AuditRecord, operation: str) -> Failure:
    """Why none of the request's attempts answered, from its audit record."""
    attempts = record.attempts
    contacted = [a for a in attempts if not a.outcome.startswith("skipped")]
    unsupported = [a for a in attempts if a.outcome == "skipped_unsupported"]
    if unsupported and all(
        a.outcome in ("skipped_unsupported", "skipped_residency") for a in attempts
    ):
        reasons = "; ".join(f"{a.provider}/{a.model}: {a.detail}" for a in unsupported)
        return Failure(
            "unsupported",
            f'route "{record.route}" has no target that can serve {operation} ({reasons})',
        )
    if contacted and all(a.status in (RATE_LIMITED, OVERLOADED) for a in contacted):
        overloaded = all(a.status == OVERLOADED for a in contacted)
        waits = [a.retry_after for a in contacted if a.retry_after is not None]
        headers = {}
        if waits:
            wait = min(waits)
            headers = {
                "retry-after": str(max(1, math.ceil(wait))),
                "retry-after-ms": str(max(0, round(wait * 1000))),
            }
        what = "overloaded" if overloaded else "rate limited or overloaded"
        return Failure(
            "throttled",
            f"every provider of the route is {what}; retry later ({len(contacted)} attempt(s))",
            overloaded,
            headers,
        )
    return Failure("failed", "all targets failed")
