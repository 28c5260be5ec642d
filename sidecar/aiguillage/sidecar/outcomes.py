"""What the client is told when no target answered: a status its SDK acts on rightly.

SDKs retry some statuses on their own (the openai and anthropic SDKs retry 408, 409, 429 and
every 5xx, twice by default), so the status of a failed request is a promise about what a
retry would do. From the request's attempts (its audit record) :func:`classify` tells apart:

- **unsupported**: no target was contacted because every target the residency allows lacks
  the operation (embeddings on an Anthropic route, token counting on a Gemini one). The same
  request would fail the same way every time, so it is a **400** ``unsupported_operation``,
  never retried. Not a 501: it is the route's targets that cannot serve the operation, and
  SDKs would retry a 501 like any 5xx. Not a 404 either: the route exists.
- **blocked**: no target was contacted because the data-protection rules keep the request's
  personal data from every target the residency allows (a ``block`` rule toward each) — or
  from every one of them that can serve the operation. Sending the same request again would
  be refused again: a **400** ``blocked_personal_data`` whose message names the categories
  and the rules (never a value). A target skipped for a passing reason (an open circuit, a
  provider whose credential is unusable) makes it a failure instead: the request might pass
  later unchanged.
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

# Skips that sending the same request again would meet again.
_BLOCKED_FOR_GOOD = frozenset({"skipped_personal_data", "skipped_residency", "skipped_unsupported"})
RATE_LIMITED = 429
OVERLOADED = 529  # Anthropic's "overloaded_error"


@dataclass(frozen=True, slots=True)
class Failure:
    kind: Literal["unsupported", "blocked", "throttled", "failed"]
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
    blocked = [a for a in attempts if a.outcome == "skipped_personal_data"]
    if blocked and all(a.outcome in _BLOCKED_FOR_GOOD for a in attempts):
        # The refusals are the same for targets at the same place: each said once.
        refusals = list(dict.fromkeys(a.detail for a in blocked))
        return Failure("blocked", "; ".join(refusals))
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
