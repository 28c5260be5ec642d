"""Names and contents of the limit counters kept in the shared store (Redis).

This module is the contract between the sidecars, which update the counters, and the
operator, which reads them to show month-to-date spend in each AIRoute's status. Both
import it; nothing else may build a key or read a counter's value by hand.

Layout (``prefix`` is ``SharedStore.key_prefix``; ``{id}`` is :func:`scope_id`)::

    {prefix}:budget:{scope}:{id}:{YYYY-MM}         hash  spent, reserved   (nano-euros)
    {prefix}:budget:{scope}:{id}:{YYYY-MM}:leases  zset  one member per reservation in flight
    {prefix}:rate:{kind}:{scope}:{id}:{minute}     int   requests or tokens in that minute

- ``scope`` is a :class:`~aiguillage.sidecar.config.LimitScope` value and ``id`` names
  its member: the namespace, ``namespace/route`` or ``namespace/service-account``. These
  are Kubernetes names (no ``:``), so keys never collide. A key depends on the scope and
  its member, never on the policy: several policies limiting one scope read one counter.
- ``YYYY-MM`` is the calendar month in ``SharedStore.time_zone`` (:func:`month`); budget
  keys expire some days after their month ends (:func:`budget_expiry`), so nothing piles
  up and last month stays readable for a while.
- Money is counted in integer nano-euros (:func:`to_nano`, rounded up so spend is never
  under-counted; :func:`from_nano` back), as Redis increments integers exactly.
  ``spent`` is the settled cost of finished requests; ``reserved`` is what requests in
  flight have reserved and not settled yet. Each reservation is also a member of the
  ``:leases`` sorted set (:func:`leases_key`), named ``{lease}:{nano-euros}`` and scored by
  the Unix time its lease ends: a reservation whose sidecar died before settling it is
  taken back out of ``reserved`` once its lease has ended, so it cannot hold a budget
  forever.
- ``minute`` is the Unix time divided by 60 (:func:`minute`); rate keys expire after
  :data:`RATE_TTL_SECONDS`.

Whenever a shared store is configured, each request's cost is added to the namespace's
and the route's budget counters of the month, whether a budget applies or not: that is
what the operator shows as spend (:func:`spend_keys`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from aiguillage.sidecar.config import LimitScope

SPENT = "spent"
RESERVED = "reserved"
NANO_PER_EUR = 1_000_000_000
# Budget keys outlive their month by this much (status may show last month a while).
BUDGET_GRACE = timedelta(days=7)
RATE_TTL_SECONDS = 120  # the current and the previous minute are all a window needs

RateKind = Literal["requests", "tokens"]


def scope_id(scope: LimitScope, namespace: str, route: str, service_account: str) -> str:
    """Who shares a counter of ``scope``: the namespace, one route, or one workload."""
    if scope is LimitScope.NAMESPACE:
        return namespace
    if scope is LimitScope.ROUTE:
        return f"{namespace}/{route}"
    return f"{namespace}/{service_account}"


def month(instant: datetime, zone: ZoneInfo) -> str:
    """``YYYY-MM`` of the calendar month ``instant`` (timezone-aware) falls in, in ``zone``."""
    return instant.astimezone(zone).strftime("%Y-%m")


def next_month(instant: datetime, zone: ZoneInfo) -> datetime:
    """When the calendar month after ``instant``'s begins, in ``zone`` (budgets start over)."""
    local = instant.astimezone(zone)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return following.replace(tzinfo=zone)


def budget_expiry(instant: datetime, zone: ZoneInfo) -> datetime:
    """When the budget keys of ``instant``'s month may expire: its end plus a grace."""
    return next_month(instant, zone) + BUDGET_GRACE


def budget_key(prefix: str, scope: LimitScope, ident: str, month_: str) -> str:
    return f"{prefix}:budget:{scope.value}:{ident}:{month_}"


def leases_key(budget_key_: str) -> str:
    """The sorted set of the reservations in flight against one budget counter."""
    return f"{budget_key_}:leases"


def minute(unix_seconds: float) -> int:
    return int(unix_seconds // 60)


def rate_key(prefix: str, kind: RateKind, scope: LimitScope, ident: str, minute_: int) -> str:
    return f"{prefix}:rate:{kind}:{scope.value}:{ident}:{minute_}"


def spend_keys(prefix: str, namespace: str, route: str, month_: str) -> tuple[str, str]:
    """The budget keys holding a namespace's and one of its routes' spend in a month."""
    return (
        budget_key(prefix, LimitScope.NAMESPACE, namespace, month_),
        budget_key(prefix, LimitScope.ROUTE, f"{namespace}/{route}", month_),
    )


def to_nano(eur: Decimal) -> int:
    """Euros to whole nano-euros, rounded up (a cost is never under-counted)."""
    return int((eur * NANO_PER_EUR).to_integral_value(rounding=ROUND_CEILING))


def from_nano(value: int | bytes | str | None) -> Decimal:
    """A counter's value (as Redis returns it; None when absent) in euros."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bytes):
        value = value.decode("ascii")
    return Decimal(int(value)) / NANO_PER_EUR
