"""Month-to-date spend in each AIRoute's status, read from the shared store the sidecars count in.

Every ``AIGUILLAGE_SPEND_INTERVAL`` seconds (default 30) the operator reads, for each
namespace it serves, the month's spend counters of the namespace and of each route (keys
and units from :mod:`aiguillage.sidecar.limits.keys`, the module the sidecars write with)
and writes ``status.spend`` with the smallest Enforce-mode budget of each scope and the
share used; ``kubectl get air`` shows ``status.spend.summary``. A status is patched only
when its figures change, or every :data:`RESTATE_SECONDS` so ``asOf`` stays recent.

Without a shared store nothing is aggregated: each sidecar counts on its own, and the
status says so. While the store cannot be read, the last figures stay, with a message.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiguillage.operator.policies import in_force
from aiguillage.sidecar.config import Limit, LimitScope, PolicyMode, SharedStore, SidecarConfig
from aiguillage.sidecar.limits import keys

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from aiguillage.operator.reconciler import Reconciler

RESTATE_SECONDS = 600
NOT_AGGREGATED = "no shared store: each sidecar counts its own spend, nothing is aggregated"
_CENT = Decimal("0.01")
_FIELD = Decimal("0.0001")

log = logging.getLogger("aiguillage.operator")


def interval() -> float:
    return float(os.environ.get("AIGUILLAGE_SPEND_INTERVAL", "30"))


def smallest_budget(limits: tuple[Limit, ...], scope: LimitScope) -> Decimal | None:
    """The tightest monthly budget an Enforce-mode policy sets for ``scope``."""
    budgets = [
        lim.budget_eur_per_month
        for lim in limits
        if lim.scope is scope
        and lim.mode is PolicyMode.ENFORCE
        and lim.budget_eur_per_month is not None
    ]
    return min(budgets) if budgets else None


def _scope(spent: Decimal, budget: Decimal | None) -> dict[str, Any]:
    used = None
    if budget is not None:
        used = (
            100
            if budget == 0 and spent > 0
            else 0
            if budget == 0
            else int((spent * 100 / budget).to_integral_value(rounding=ROUND_FLOOR))
        )
    return {
        "monthToDateEur": str(spent.quantize(_FIELD)),
        "budgetEur": "" if budget is None else str(budget),
        "budgetUsedPercent": used,
    }


def spend_status(
    limits: tuple[Limit, ...], month: str, route: Decimal, namespace: Decimal, as_of: str
) -> dict[str, Any]:
    """``status.spend`` of one route from its namespace's and its own month-to-date spend."""
    mine = _scope(route, smallest_budget(limits, LimitScope.ROUTE))
    whole = _scope(namespace, smallest_budget(limits, LimitScope.NAMESPACE))
    summary = f"{route.quantize(_CENT)} EUR"
    if mine["budgetEur"]:
        summary += f" ({mine['budgetUsedPercent']}% of {mine['budgetEur']})"
    elif whole["budgetEur"]:
        summary += f" (namespace {whole['budgetUsedPercent']}% of {whole['budgetEur']})"
    return {
        "month": month,
        "route": mine,
        "namespace": whole,
        "aggregated": True,
        "asOf": as_of,
        "message": "",
        "summary": summary,
    }


def _same_figures(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "asOf"} == {
        k: v for k, v in b.items() if k != "asOf"
    }


def _age(as_of: str, now: datetime) -> float:
    try:
        then = datetime.strptime(as_of, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return float("inf")
    return (now - then).total_seconds()


@dataclass
class SpendReader:
    """Reads the spend counters, keeping one Redis client per (URL, password)."""

    clients: dict[tuple[str, bytes | None], aioredis.Redis] = field(default_factory=dict)

    def _client(self, store: SharedStore, password: bytes | None) -> aioredis.Redis:
        import redis.asyncio as aioredis

        key = (store.url, password)
        client = self.clients.get(key)
        if client is None:
            client = aioredis.Redis.from_url(
                store.url,
                password=password.decode() if password else None,
                socket_timeout=3,
                socket_connect_timeout=3,
            )
            self.clients[key] = client
        return client

    async def spent(
        self, store: SharedStore, password: bytes | None, names: list[str]
    ) -> list[Decimal]:
        """Month-to-date settled spend in euros of each key of ``names``."""
        client = self._client(store, password)
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(name, keys.SPENT)
            values = await pipe.execute()
        return [keys.from_nano(v) for v in values]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()


async def refresh(reconciler: Reconciler, reader: SpendReader, now: datetime) -> None:
    """Write ``status.spend`` of every served route whose figures changed."""
    as_of = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for namespace, config in list(reconciler.configs.items()):
        desired = await _namespace_spend(reconciler, reader, namespace, config, now, as_of)
        for name, spend in desired.items():
            state = reconciler.routes.get((namespace, name))
            if state is None:
                continue
            current = state.status.get("spend") or {}
            fresh = _age(str(current.get("asOf", "")), now) < RESTATE_SECONDS
            if fresh and _same_figures(current, spend):
                continue
            await reconciler.kube.patch_status("airoutes", namespace, name, {"spend": spend})
            state.status = {**state.status, "spend": spend}


async def _namespace_spend(
    reconciler: Reconciler,
    reader: SpendReader,
    namespace: str,
    config: SidecarConfig,
    now: datetime,
    as_of: str,
) -> dict[str, dict[str, Any]]:
    routes = {r.name: r for r in config.routes.values()}
    store = config.shared_store
    if store is None:
        return {
            name: {"aggregated": False, "asOf": as_of, "message": NOT_AGGREGATED,
                   "summary": "per sidecar"}
            for name in routes
        }  # fmt: skip
    month = keys.month(now, ZoneInfo(store.time_zone))
    names = [keys.spend_keys(store.key_prefix, namespace, name, month) for name in routes]
    flat = [k for pair in names for k in pair]
    found = in_force(reconciler.inv, namespace).shared_store(reconciler.inv)
    password = found.credential if found is not None else None
    try:
        values = await reader.spent(store, password, flat)
    except Exception as exc:  # unreachable, refused, wrong password: keep the last figures
        problem = f"shared store {store.url} could not be read ({type(exc).__name__})"
        log.warning("namespace %s: %s", namespace, problem)
        out = {}
        for name in routes:
            state = reconciler.routes.get((namespace, name))
            last = dict((state.status.get("spend") if state else None) or {})
            out[name] = {**last, "message": problem, "summary": last.get("summary", "unknown")}
        return out
    out = {}
    for i, (name, route) in enumerate(routes.items()):
        namespace_spent, route_spent = values[2 * i], values[2 * i + 1]
        out[name] = spend_status(route.limits, month, route_spent, namespace_spent, as_of)
    return out


async def run(reconciler: Reconciler) -> None:
    """Refresh spend forever (cancelled at shutdown); a failed round is retried next time."""
    reader = SpendReader()
    try:
        while True:
            await asyncio.sleep(interval())
            try:
                await refresh(reconciler, reader, datetime.now(UTC))
            except Exception:
                log.exception("refreshing spend failed; will retry")
    finally:
        await reader.close()
