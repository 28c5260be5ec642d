"""What a counter store does: admit a request against its counters, settle it afterwards.

Two stores implement :class:`Store` with the same semantics: :class:`~.redis_store.RedisStore`
(one Lua script per operation, shared by every sidecar of the namespace) and
:class:`~.memory_store.MemoryStore` (this process only: used when no shared store is
configured, and while the shared one cannot be reached by limits that fail open).

An :class:`Admission` names the counters a request adds to and the checks it must pass.
In one atomic step a store reads every counter, evaluates the checks in order and, only if
all of them fit, adds the request to every counter (all or nothing). It answers the
counters' :class:`Levels` as they were *before* the request, from which the caller words a
refusal and evaluates Audit-mode limits (which are never checks).

- A :class:`BudgetCounter` is a month's spend: settled cost (``spent``) plus the
  reservations of requests in flight (``reserved``), in nano-euros. A budget check fits when
  ``spent + reserved + reserve ≤ ceiling``. A reservation is a lease (see
  :mod:`~aiguillage.sidecar.limits.keys`) that ends at ``lease_until``; an ended lease is
  taken back out of ``reserved`` by the next admission against that counter.
- A :class:`RateCounter` is one minute of requests or tokens; its check is the sliding window
  of :mod:`~aiguillage.sidecar.limits.window`.

A :class:`Settlement` then releases the request's reservation (if its lease is still there)
and adds its real cost to ``spent``, and corrects token counters by the difference between
the real and the estimated tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from aiguillage.sidecar.limits import window


@dataclass(frozen=True, slots=True)
class BudgetCounter:
    key: str
    # Nano-euros reserved until settled; 0 when no budget checks this counter (spend only).
    reserve: int
    expire_at: int  # Unix seconds: the month's end plus a grace (keys.budget_expiry)


@dataclass(frozen=True, slots=True)
class RateCounter:
    key: str  # this minute's counter
    previous: str  # the previous minute's
    amount: int  # 1 request, or the request's estimated tokens


@dataclass(frozen=True, slots=True)
class Check:
    """One ceiling on one counter (several limits may check one counter)."""

    kind: Literal["budget", "rate"]
    counter: int  # index into Admission.budgets or Admission.rates
    ceiling: int  # nano-euros, requests or tokens


@dataclass(frozen=True, slots=True)
class Admission:
    budgets: tuple[BudgetCounter, ...]
    rates: tuple[RateCounter, ...]
    checks: tuple[Check, ...]  # Enforce-mode checks only, in the order they are evaluated
    now: float  # Unix seconds
    lease: str  # unique per request: names its reservations
    lease_until: float  # Unix seconds

    @property
    def weight(self) -> float:
        return window.weight(self.now)


@dataclass(frozen=True, slots=True)
class Levels:
    """The counters before the request, and whether it was admitted."""

    admitted: bool
    failed: int | None  # index into Admission.checks of the first check that did not fit
    budgets: tuple[tuple[int, int], ...]  # (spent, reserved) per budget counter
    rates: tuple[tuple[int, int], ...]  # (previous minute, current minute) per rate counter


@dataclass(frozen=True, slots=True)
class Settlement:
    budgets: tuple[BudgetCounter, ...]  # the admission's, whose reservations are released
    lease: str
    cost: int  # nano-euros really spent, added to every budget counter
    # Whether there are reservations to release (False: spend only, e.g. counted late).
    release: bool
    # Corrections of token counters: (key, real tokens − estimated tokens).
    tokens: tuple[tuple[str, int], ...]


def fits(admission: Admission, check: Check, levels: Levels) -> bool:
    """Whether ``check`` fits the counters as ``levels`` found them."""
    if check.kind == "budget":
        spent, reserved = levels.budgets[check.counter]
        return spent + reserved + admission.budgets[check.counter].reserve <= check.ceiling
    previous, current = levels.rates[check.counter]
    rate = admission.rates[check.counter]
    return window.fits(previous, current, admission.weight, rate.amount, check.ceiling)


class Store(Protocol):
    async def admit(self, admission: Admission) -> Levels:
        """Check and count atomically; raise StoreUnavailable when it cannot answer."""

    async def settle(self, settlement: Settlement) -> tuple[int, ...]:
        """Settle; answer each budget counter's ``spent`` after it. StoreUnavailable on
        failure (the settlement may or may not have been applied)."""

    async def close(self) -> None: ...
