"""The in-process counter store: the limits of one sidecar, with the shared store's semantics.

Used when the config names no shared store (every sidecar then enforces each limit on its
own: N replicas let through up to N times a limit), and while the shared store cannot be
reached, for the limits that fail open. One event loop runs every request, so each
operation is atomic by construction. Keys are those of the shared store
(:mod:`~aiguillage.sidecar.limits.keys`); expired ones are swept every
:data:`SWEEP_EVERY` operations, so memory stays bounded by the keys of two minutes and of
the current months.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiguillage.sidecar.limits import keys
from aiguillage.sidecar.limits.store import Admission, Levels, Settlement, fits

SWEEP_EVERY = 4096


@dataclass(slots=True)
class _Budget:
    spent: int = 0
    reserved: int = 0
    # lease -> (nano-euros, Unix time its lease ends)
    leases: dict[str, tuple[int, float]] = field(default_factory=dict)
    expire_at: float = float("inf")


@dataclass(slots=True)
class _Rate:
    value: int = 0
    expire_at: float = float("inf")


class MemoryStore:
    def __init__(self) -> None:
        self._budgets: dict[str, _Budget] = {}
        self._rates: dict[str, _Rate] = {}
        self._operations = 0

    async def admit(self, admission: Admission) -> Levels:
        return self.admit_now(admission)

    def admit_now(self, admission: Admission) -> Levels:
        now = admission.now
        self._tick(now)
        budgets = []
        for counter in admission.budgets:
            budget = self._budget(counter.key, now)
            for lease, (amount, until) in list(budget.leases.items()):
                if until <= now:
                    budget.reserved = max(0, budget.reserved - amount)
                    del budget.leases[lease]
            budgets.append((budget.spent, budget.reserved))
        rates = [
            (self._rate(r.previous, now).value, self._rate(r.key, now).value)
            for r in admission.rates
        ]
        levels = Levels(True, None, tuple(budgets), tuple(rates))
        for i, check in enumerate(admission.checks):
            if not fits(admission, check, levels):
                return Levels(False, i, levels.budgets, levels.rates)
        for counter in admission.budgets:
            budget = self._budgets[counter.key]
            budget.expire_at = counter.expire_at
            if counter.reserve > 0:
                budget.reserved += counter.reserve
                budget.leases[admission.lease] = (counter.reserve, admission.lease_until)
        for r in admission.rates:
            rate = self._rate(r.key, now)
            self._rates[r.key] = rate
            rate.value += r.amount
            rate.expire_at = now + keys.RATE_TTL_SECONDS
        return levels

    async def settle(self, settlement: Settlement) -> tuple[int, ...]:
        return self.settle_now(settlement)

    def settle_now(self, settlement: Settlement) -> tuple[int, ...]:
        spent = []
        for counter in settlement.budgets:
            budget = self._budgets.setdefault(counter.key, _Budget())
            budget.expire_at = counter.expire_at
            if settlement.release:
                lease = budget.leases.pop(settlement.lease, None)
                if lease is not None:
                    budget.reserved = max(0, budget.reserved - lease[0])
            budget.spent += settlement.cost
            spent.append(budget.spent)
        for key, delta in settlement.tokens:
            rate = self._rates.get(key)
            if rate is not None:
                rate.value += delta
        return tuple(spent)

    def raise_spent(self, key: str, spent: int) -> None:
        """Make ``key``'s spend at least ``spent`` (what the shared store last said), so that
        a budget failing open counts on from there, not from zero."""
        budget = self._budgets.setdefault(key, _Budget())
        budget.spent = max(budget.spent, spent)

    async def close(self) -> None:
        return None

    def _budget(self, key: str, now: float) -> _Budget:
        budget = self._budgets.get(key)
        if budget is None or budget.expire_at <= now:
            budget = self._budgets[key] = _Budget()
        return budget

    def _rate(self, key: str, now: float) -> _Rate:
        rate = self._rates.get(key)
        if rate is None or rate.expire_at <= now:
            return _Rate()
        return rate

    def _tick(self, now: float) -> None:
        self._operations += 1
        if self._operations % SWEEP_EVERY:
            return
        for table in (self._budgets, self._rates):
            for key in [k for k, v in table.items() if v.expire_at <= now]:
                del table[key]
