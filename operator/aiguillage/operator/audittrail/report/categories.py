"""What a record's outcome means for the report, tolerant of outcomes it has never seen.

Sidecars gain outcomes over time (limits, budgets and data protection add their own), and a
report must never drop or misfile a record because its outcome is new. Known outcomes map to
a category; an unknown one is placed by its HTTP status (429 from the sidecar itself: a
limit; 403/451: data protection) or else kept as "other", under its own name.
"""

from __future__ import annotations

SERVED = "served"
RESIDENCY = "refused: residency"
LIMIT = "refused: limit or budget"
DATA_PROTECTION = "refused: data protection"
CLIENT = "client error"
PROVIDERS = "providers failed"
OTHER = "other"

# Outcomes after which the client had its answer.
SERVED_OUTCOMES = frozenset({"ok", "answered_by_sidecar", "client_closed"})
KNOWN: dict[str, str] = {
    "no_compliant_target": RESIDENCY,
    "blocked_personal_data": DATA_PROTECTION,  # no target may receive it (sidecar/protection.py)
    "bad_request": CLIENT,
    "invalid_residency_header": CLIENT,
    "unsupported_operation": CLIENT,
    "rejected": CLIENT,  # a provider refused the request itself (4xx relayed)
    "route_not_found": CLIENT,
    "request_too_large": CLIENT,
    "invalid_json": CLIENT,
    "all_targets_failed": PROVIDERS,
    "upstream_rate_limited": PROVIDERS,
    "stream_error": PROVIDERS,
    "internal_error": OTHER,
}
# Words of outcome codes (not of messages) that name what refused a request.
_LIMIT_WORDS = ("limit", "budget", "quota")
_DATA_PROTECTION_WORDS = ("personal_data", "data_protection", "blocked")


def category(outcome: str, status: int | None) -> str:
    if outcome in SERVED_OUTCOMES:
        return SERVED
    known = KNOWN.get(outcome)
    if known is not None:
        return known
    if any(word in outcome for word in _DATA_PROTECTION_WORDS) or status in (403, 451):
        return DATA_PROTECTION
    if any(word in outcome for word in _LIMIT_WORDS) or status == 429:
        return LIMIT
    return OTHER


def is_refusal(category_name: str) -> bool:
    """Refused by a rule (residency, a limit, data protection), as opposed to failed."""
    return category_name in (RESIDENCY, LIMIT, DATA_PROTECTION)
