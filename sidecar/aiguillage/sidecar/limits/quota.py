"""Rate limits and budgets on the request path: reserve before sending, settle after.

The server calls :meth:`Limiter.admit` once a request is routed, before anything is sent,
and :meth:`Limiter.settle` when it is over (in a ``finally``, so failed, cut and cancelled
requests settle too)::

    ticket = await limiter.admit(snapshot, route, call, record, caller)   # may raise LimitError
    try:
        ...forward...
    finally:
        limiter.settle(ticket, record)

**Admission.** Every limit of the route (``Route.limits``, one per AIPolicy part) names a
scope; the caller's namespace, route or service account picks the counter (keys from
:mod:`~aiguillage.sidecar.limits.keys`). The request reserves its worst-case cost
(:mod:`~aiguillage.sidecar.limits.estimate`) against every budget counter and counts one
request and its estimated tokens against every rate counter, in one atomic store call
that checks every Enforce-mode limit first and adds nothing unless all fit. One that does
not fit refuses the request: :class:`~.errors.LimitRefused`, a 429 naming the limit, its
policy, its scope and the caller, with ``Retry-After``. Audit-mode limits never refuse: the
request is counted, and if it would have been refused the audit record says so and
``aiguillage_limit_audit_total`` counts it.

**Settlement** releases the reservation and adds the real cost (from the answer's usage,
streams included) to every budget counter, and corrects the token counters by the
difference between real and estimated tokens. An answer that reported no usage at all
(a provider that omits it, a stream cut before its usage arrived) is charged its
reservation: the provider may bill it, and the budget must not be bypassed by it.

**The overspend bound** (stated in the README). A request is admitted only if the spend,
plus every reservation in flight, plus its own reservation fits the budget; settlement
replaces a reservation by the real cost. So the month's spend never exceeds the budget by
more than the sum, over requests admitted concurrently near the end, of their real cost
beyond their reservation: input text denser than 2 bytes per token, output beyond the
4,096-token cap of requests that state no maximum, and attempts that failed yet were
billed (a failed attempt is charged nothing). With budgets failing open, spend served while
the store was unreachable counts against the last spend this sidecar saw, per sidecar.

**Without a shared store** every sidecar counts on its own (:class:`MemoryStore`): a limit
then holds per sidecar, and N replicas let through up to N times it. With one
(``SidecarConfig.shared_store``), each request's cost is also added to its namespace's and
route's spend counters (:func:`~aiguillage.sidecar.limits.keys.spend_keys`), budget or not,
for the operator to show; that costs one store call after the answer, none before it.
A route without limits and without a shared store costs two attribute reads.

While the shared store cannot be reached (:mod:`~aiguillage.sidecar.limits.shared`), each
limit does what its ``when_store_unavailable`` says: ``closed`` (the default for budgets)
refuses with 503 ``limits_unavailable``; ``open`` (the default for rate limits) serves the
request, counted in this sidecar's memory store, and the audit record says so.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.audit import AuditRecord
from aiguillage.sidecar.config import (
    Limit,
    LimitScope,
    PolicyMode,
    Route,
    SharedStore,
    StoreFailure,
)
from aiguillage.sidecar.limits import keys, window
from aiguillage.sidecar.limits.errors import LimitRefused, LimitsUnavailable, StoreUnavailable
from aiguillage.sidecar.limits.estimate import Estimate, worst_case
from aiguillage.sidecar.limits.memory_store import MemoryStore
from aiguillage.sidecar.limits.redis_store import DEFAULT_TIMEOUT, RedisStore
from aiguillage.sidecar.limits.shared import SharedStore as SharedCounters
from aiguillage.sidecar.limits.store import (
    Admission,
    BudgetCounter,
    Check,
    Levels,
    RateCounter,
    Settlement,
    fits,
)
from aiguillage.sidecar.metrics import Metrics

LimitKind = Literal["budget", "requests_per_minute", "tokens_per_minute"]

REFUSALS = "aiguillage_limit_refusals_total"
AUDITED = "aiguillage_limit_audit_total"
UNAVAILABLE = "aiguillage_limit_store_unavailable_total"
SPEND = "aiguillage_budget_spend_eur"
CEILING = "aiguillage_budget_limit_eur"
STORE_ERRORS = "aiguillage_shared_store_errors_total"

# A reservation's lease outlives the route's total deadline by this much: a request cannot
# run longer, and sidecars' clocks may differ by up to this before a lease ends too early.
LEASE_MARGIN = 60.0
# Retry-After when a budget has room but requests in flight hold it.
IN_FLIGHT_RETRY = 2.0
DEFAULT_ZONE = "Europe/Paris"  # SharedStore.time_zone's default: months without a store
# Operations that never reach a model: not limited, nothing to count.
UNLIMITED = frozenset({Operation.COUNT_TOKENS})
# Outcomes of a request a provider answered, even partly (see "Settlement" above).
ANSWERED = frozenset({"ok", "stream_error", "client_closed"})

_SCOPE_WORDS = {
    LimitScope.NAMESPACE: "namespace {ns}",
    LimitScope.ROUTE: "route {route} of namespace {ns}",
    LimitScope.WORKLOAD: "service account {sa} of namespace {ns}",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """The workload calling: its pod's namespace, service account and name."""

    namespace: str
    service_account: str
    pod: str

    def words(self) -> str:
        pod = f", pod {self.pod}" if self.pod else ""
        return f"caller: service account {self.service_account} of namespace {self.namespace}{pod}"


@dataclass(frozen=True, slots=True)
class _Rule:
    """One part of one limit (its budget, or one of its rates) as applied to a request."""

    limit: Limit
    kind: LimitKind
    subject: str  # keys.scope_id: who shares the counter
    where: str  # the scope in words: "namespace support"
    check: Check

    @property
    def enforced(self) -> bool:
        return self.limit.mode is PolicyMode.ENFORCE

    def fails(self) -> StoreFailure:
        return self.limit.on_store_failure(self.kind == "budget")

    def labels(self, route: str) -> tuple[tuple[str, str], ...]:
        return (("route", route), ("policy", self.limit.policy), ("limit", self.kind))

    def entry(self, result: str, **more: Any) -> dict[str, Any]:
        return {
            "policy": self.limit.policy,
            "limit": self.kind,
            "scope": self.limit.scope.value,
            "subject": self.subject,
            "mode": self.limit.mode.value,
            "result": result,
            **more,
        }


@dataclass(frozen=True, slots=True)
class _Layout:
    """What a route's requests count against in one minute (the same for all of them)."""

    budgets: tuple[tuple[str, bool], ...]  # (key, whether a budget checks it)
    rates: tuple[tuple[str, str, bool], ...]  # (key, previous minute's key, counts tokens)
    rules: tuple[_Rule, ...]
    checks: tuple[Check, ...]  # of the Enforce-mode rules, in order
    audited: tuple[_Rule, ...]  # the Audit-mode rules
    token_keys: tuple[str, ...]
    expire_at: int


@dataclass(slots=True)
class Ticket:
    """A request admitted against its limits, to be settled when it is over."""

    route: str
    admission: Admission
    estimate: Estimate
    rules: tuple[_Rule, ...]
    # Where it was counted: "shared" (the shared store), "local" (this sidecar's memory).
    counted: Literal["shared", "local"]
    token_keys: tuple[str, ...] = ()
    settled: bool = field(default=False)


def eur(nano: int | Decimal) -> str:
    """A sum for people: at least two decimals, more for small sums ("0.0042")."""
    value = keys.from_nano(nano) if isinstance(nano, int) else nano
    text = f"{value:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def _tokens(n: float) -> str:
    return f"{round(n):,}"


@dataclass(frozen=True)
class LimiterSettings:
    # Unix time now (tests move it to hold a request mid-minute, or to a month's end).
    clock: Callable[[], float] = time.time
    # Seconds the shared store has to connect and to answer each call.
    store_timeout: float = DEFAULT_TIMEOUT


class Limiter:
    """The limits of one sidecar: a memory store, and the shared store the config names."""

    def __init__(self, metrics: Metrics, settings: LimiterSettings | None = None) -> None:
        settings = settings or LimiterSettings()
        self.metrics = metrics
        self.clock = settings.clock
        self.store_timeout = settings.store_timeout
        self.memory = MemoryStore()
        self.shared: SharedCounters | None = None
        self._settings: tuple[SharedStore, str | None] | None = None
        self._zone = ZoneInfo(DEFAULT_ZONE)
        self._prefix = SharedStore.model_fields["key_prefix"].default
        self._leases = itertools.count(1)
        self._token = secrets.token_hex(6)
        self._closing: set[asyncio.Task[None]] = set()
        # Layouts of the current minute: id(route) -> (route, caller, layout).
        self._layouts: dict[int, tuple[Route, Caller, _Layout]] = {}
        self._layout_minute = -1
        # Spend of each budget counter as the shared store last said (seeds the memory store
        # when a budget fails open).
        self._seen: dict[str, int] = {}

    # -- configuration ---------------------------------------------------------------------

    def use(self, store: SharedStore | None, password: str | None) -> None:
        """Count in ``store`` from now on (None: in this sidecar only)."""
        settings = None if store is None else (store, password)
        if settings == self._settings:
            return
        old, self.shared, self._settings = self.shared, None, settings
        self._layouts.clear()
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if store is None:
            self._zone = ZoneInfo(DEFAULT_ZONE)
            self._prefix = SharedStore.model_fields["key_prefix"].default
            return
        self._zone = ZoneInfo(store.time_zone)
        self._prefix = store.key_prefix
        self.shared = SharedCounters(
            RedisStore(store.url, password, self.store_timeout), self._store_error
        )

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
            self.shared = None
            self._settings = None
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=1.0)

    def _store_error(self, operation: str) -> None:
        self.metrics.inc(STORE_ERRORS, (("operation", operation),))

    # -- admission -------------------------------------------------------------------------

    async def admit(
        self, route: Route, call: Call, record: AuditRecord, caller: Caller
    ) -> Ticket | None:
        """Admit ``call`` against ``route``'s limits, or raise a LimitError."""
        if not route.limits and self.shared is None:
            return None
        if call.operation in UNLIMITED:
            return None
        now = self.clock()
        estimate = worst_case(call, route)
        admission, layout = self._plan(route, estimate, caller, now)
        rules = layout.rules
        ticket = Ticket(route.name, admission, estimate, rules, "shared", layout.token_keys)
        if not rules:
            # Spend counting only: nothing to check, the store hears of it at settlement.
            return ticket
        if self.shared is None:
            ticket.counted = "local"
            levels = self.memory.admit_now(admission)
        else:
            try:
                levels = await self._shared_admit(self.shared, ticket)
            except StoreUnavailable:
                ticket.counted = "local"
                levels = self._admit_locally(self.shared, route, admission, rules, record)
            else:
                self._saw(admission, levels.budgets)
        self._show_budgets(admission, rules, [spent for spent, _ in levels.budgets])
        if not levels.admitted:
            assert levels.failed is not None
            enforced = [r for r in rules if r.enforced]
            self._refuse(ticket, enforced[levels.failed], levels, caller, record)
        for rule in layout.audited:
            if not fits(admission, rule.check, levels):
                self.metrics.inc(AUDITED, rule.labels(route.name))
                record.limits.append(rule.entry("exceeded", **_used(rule, admission, levels)))
        return ticket

    async def _shared_admit(self, shared: SharedCounters, ticket: Ticket) -> Levels:
        """Admit in the shared store. Shielded: if the request is cancelled meanwhile (its
        client went away), a reservation the store makes all the same is given back."""
        admitting = asyncio.ensure_future(shared.admit(ticket.admission))
        try:
            return await asyncio.shield(admitting)
        except asyncio.CancelledError:
            admitting.add_done_callback(lambda done: self._give_back(shared, ticket, done))
            raise

    def _give_back(
        self, shared: SharedCounters, ticket: Ticket, done: asyncio.Future[Levels]
    ) -> None:
        if done.cancelled() or done.exception() is not None or not done.result().admitted:
            return
        admission = ticket.admission
        tokens = tuple((key, -ticket.estimate.tokens) for key in ticket.token_keys)
        shared.settle(
            Settlement(admission.budgets, admission.lease, 0, True, tokens), lambda spent: None
        )

    def _admit_locally(
        self,
        shared: SharedCounters,
        route: Route,
        admission: Admission,
        rules: tuple[_Rule, ...],
        record: AuditRecord,
    ) -> Levels:
        """The shared store is down: refuse if a limit fails closed, else count here."""
        closed = [r for r in rules if r.enforced and r.fails() is StoreFailure.CLOSED]
        # Refused: the limits failing closed say so. Served: every limit counts here.
        for rule in closed or rules:
            result = "refused" if closed else "counted_locally"
            self.metrics.inc(UNAVAILABLE, (*rule.labels(route.name), ("result", result)))
            record.limits.append(
                rule.entry("store_unavailable", whenStoreUnavailable=rule.fails().value)
            )
        if closed:
            rule = closed[0]
            raise LimitsUnavailable(
                f"the shared store of limits ({shared.store.url}) cannot be reached, and "
                f"{self._name(rule)} refuses requests while it cannot be counted "
                f"(whenStoreUnavailable: closed); retry later",
                max(1.0, shared.retry_in()),
            )
        for counter in admission.budgets:
            seen = self._seen.get(counter.key)
            if seen is not None:
                self.memory.raise_spent(counter.key, seen)
        return self.memory.admit_now(admission)

    def _plan(
        self, route: Route, estimate: Estimate, caller: Caller, now: float
    ) -> tuple[Admission, _Layout]:
        minute = keys.minute(now)
        if minute != self._layout_minute:
            self._layouts.clear()
            self._layout_minute = minute
        cached = self._layouts.get(id(route))
        if cached is None or cached[0] is not route or cached[1] != caller:
            layout = self._layout(route, caller, now)
            # The route is kept with its layout, so that its id cannot be reused meanwhile.
            self._layouts[id(route)] = (route, caller, layout)
        else:
            layout = cached[2]
        cost, tokens = estimate.cost_nano, estimate.tokens
        admission = Admission(
            budgets=tuple(
                BudgetCounter(key, cost if checked else 0, layout.expire_at)
                for key, checked in layout.budgets
            ),
            rates=tuple(
                RateCounter(key, before, tokens if in_tokens else 1)
                for key, before, in_tokens in layout.rates
            ),
            checks=layout.checks,
            now=now,
            lease=f"{self._token}:{next(self._leases)}",
            lease_until=now + route.timeouts.total + LEASE_MARGIN,
        )
        return admission, layout

    def _layout(self, route: Route, caller: Caller, now: float) -> _Layout:
        """The counters and checks of ``route``'s requests in ``now``'s minute."""
        instant = datetime.fromtimestamp(now, self._zone)
        month = keys.month(instant, self._zone)
        minute = keys.minute(now)
        ns, sa = caller.namespace, caller.service_account
        budgets: dict[str, bool] = {}  # key -> whether a budget checks it (reserve there)
        rates: dict[str, tuple[str, bool]] = {}  # key -> (previous minute's key, tokens?)
        parts: list[tuple[Limit, LimitKind, str, str, str, int]] = []
        for limit in route.limits:
            subject = keys.scope_id(limit.scope, ns, route.name, sa)
            where = _SCOPE_WORDS[limit.scope].format(ns=ns, route=route.name, sa=sa)
            if limit.budget_eur_per_month is not None:
                key = keys.budget_key(self._prefix, limit.scope, subject, month)
                budgets[key] = True
                ceiling = keys.to_nano(limit.budget_eur_per_month)
                parts.append((limit, "budget", subject, where, key, ceiling))
            per_minute: tuple[tuple[keys.RateKind, LimitKind, int | None], ...] = (
                ("requests", "requests_per_minute", limit.requests_per_minute),
                ("tokens", "tokens_per_minute", limit.tokens_per_minute),
            )
            for unit, kind, most in per_minute:
                if most is None:
                    continue
                key = keys.rate_key(self._prefix, unit, limit.scope, subject, minute)
                before = keys.rate_key(self._prefix, unit, limit.scope, subject, minute - 1)
                rates[key] = (before, unit == "tokens")
                parts.append((limit, kind, subject, where, key, most))
        if self.shared is not None:
            for key in keys.spend_keys(self._prefix, ns, route.name, month):
                budgets.setdefault(key, False)
        budget_index = {key: i for i, key in enumerate(budgets)}
        rate_index = {key: i for i, key in enumerate(rates)}
        rules = tuple(
            _Rule(
                limit,
                kind,
                subject,
                where,
                Check("budget", budget_index[key], ceiling)
                if kind == "budget"
                else Check("rate", rate_index[key], ceiling),
            )
            for limit, kind, subject, where, key, ceiling in parts
        )
        return _Layout(
            budgets=tuple(budgets.items()),
            rates=tuple((key, before, tokens) for key, (before, tokens) in rates.items()),
            rules=rules,
            checks=tuple(r.check for r in rules if r.enforced),
            audited=tuple(r for r in rules if not r.enforced),
            token_keys=tuple(key for key, (_, tokens) in rates.items() if tokens),
            expire_at=int(keys.budget_expiry(instant, self._zone).timestamp()),
        )

    # -- refusals --------------------------------------------------------------------------

    def _name(self, rule: _Rule) -> str:
        limit = rule.limit
        if rule.kind == "budget":
            assert limit.budget_eur_per_month is not None
            what = f"monthly budget of {eur(limit.budget_eur_per_month)} EUR"
        elif rule.kind == "requests_per_minute":
            what = f"rate limit of {limit.requests_per_minute} requests per minute"
        else:
            what = f"rate limit of {limit.tokens_per_minute} tokens per minute"
        return f"{what} of AIPolicy {limit.policy} for {rule.where}"

    def _refuse(
        self, ticket: Ticket, rule: _Rule, levels: Levels, caller: Caller, record: AuditRecord
    ) -> None:
        admission, estimate, now = ticket.admission, ticket.estimate, ticket.admission.now
        self.metrics.inc(REFUSALS, rule.labels(ticket.route))
        record.limits.append(rule.entry("refused", **_used(rule, admission, levels)))
        check = rule.check
        name = self._name(rule)
        if check.kind == "budget":
            spent, reserved = levels.budgets[check.counter]
            need = admission.budgets[check.counter].reserve
            if spent >= check.ceiling:
                why = f"{name} is used up ({eur(spent)} EUR spent)"
            else:
                why = (
                    f"{name} cannot cover this request: {eur(spent)} EUR spent and "
                    f"{eur(reserved)} EUR reserved by requests in flight, and this request may "
                    f"cost up to {eur(need)} EUR ({_tokens(estimate.input_tokens)} input tokens "
                    f"estimated, at most {_tokens(estimate.output_tokens)} output tokens); a "
                    "lower max_tokens asks for less"
                )
            if spent + need <= check.ceiling:
                retry = IN_FLIGHT_RETRY
            else:
                instant = datetime.fromtimestamp(now, self._zone)
                retry = keys.next_month(instant, self._zone).timestamp() - now
        else:
            previous, current = levels.rates[check.counter]
            amount = admission.rates[check.counter].amount
            used = window.level(previous, current, admission.weight)
            wait = window.wait(previous, current, now, amount, check.ceiling)
            unit = "requests" if rule.kind == "requests_per_minute" else "tokens"
            if wait is None:
                why = (
                    f"{name}: this request alone may use {_tokens(amount)} tokens "
                    f"({_tokens(estimate.input_tokens)} input tokens estimated, at most "
                    f"{_tokens(estimate.output_tokens)} output tokens), more than the whole "
                    "limit; a lower max_tokens asks for less"
                )
                retry = window.SECONDS
            else:
                why = f"{name} is reached ({_tokens(used)} {unit} in the last minute)"
                retry = wait
        raise LimitRefused(f"{why}; {caller.words()}", retry, rule.kind, rule.limit.policy)

    # -- settlement ------------------------------------------------------------------------

    def settle(self, ticket: Ticket | None, record: AuditRecord) -> None:
        """Settle ``ticket`` with what ``record`` says the request used (never raises)."""
        if ticket is None or ticket.settled:
            return
        ticket.settled = True
        estimate = ticket.estimate
        cost = 0 if record.cost_eur is None else keys.to_nano(record.cost_eur)
        tokens = record.input_tokens + record.output_tokens
        if tokens == 0 and record.outcome in ANSWERED and _contacted(record):
            cost, tokens = estimate.cost_nano, estimate.tokens
        admission = ticket.admission
        if not ticket.rules:
            if cost > 0 and self.shared is not None:
                spend = Settlement(admission.budgets, admission.lease, cost, False, ())
                self.shared.settle(spend, lambda spent: None)
            return
        settlement = Settlement(
            admission.budgets,
            admission.lease,
            cost,
            True,
            tuple((key, tokens - estimate.tokens) for key in ticket.token_keys),
        )

        def show(spent: tuple[int, ...]) -> None:
            self._show_budgets(admission, ticket.rules, list(spent))
            if ticket.counted == "shared":
                self._saw(admission, [(s, 0) for s in spent])

        if ticket.counted == "local" or self.shared is None:
            show(self.memory.settle_now(settlement))
            if self.shared is not None and cost > 0:
                # Served while the store was down: its spend still belongs there.
                late = Settlement(admission.budgets, admission.lease, cost, False, ())
                self.shared.settle(late, lambda spent: None)
            return
        self.shared.settle(settlement, show)

    # -- what this sidecar saw -------------------------------------------------------------

    def _saw(self, admission: Admission, budgets: Any) -> None:
        for counter, (spent, _) in zip(admission.budgets, budgets, strict=True):
            self._seen[counter.key] = spent

    def _show_budgets(
        self, admission: Admission, rules: tuple[_Rule, ...], spent: list[int]
    ) -> None:
        for rule in rules:
            if rule.kind != "budget":
                continue
            labels = (
                ("policy", rule.limit.policy),
                ("scope", rule.limit.scope.value),
                ("subject", rule.subject),
            )
            self.metrics.set(SPEND, labels, spent[rule.check.counter] / keys.NANO_PER_EUR)
            self.metrics.set(CEILING, labels, rule.check.ceiling / keys.NANO_PER_EUR)


def _contacted(record: AuditRecord) -> bool:
    return any(not a.outcome.startswith("skipped") for a in record.attempts)


def _used(rule: _Rule, admission: Admission, levels: Levels) -> dict[str, Any]:
    """The numbers of a refusal or an Audit-mode excess, for the audit record."""
    check = rule.check
    if check.kind == "budget":
        spent, reserved = levels.budgets[check.counter]
        return {
            "ceiling": eur(check.ceiling),
            "spentEur": eur(spent),
            "reservedEur": eur(reserved),
            "requestEur": eur(admission.budgets[check.counter].reserve),
        }
    previous, current = levels.rates[check.counter]
    return {
        "ceiling": check.ceiling,
        "used": round(window.level(previous, current, admission.weight), 1),
        "request": admission.rates[check.counter].amount,
    }
