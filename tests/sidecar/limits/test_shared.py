"""The shared store through outages: fail fast while down, come back, lose no settlement."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from aiguillage.devtools.redis_server import RedisServer
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.audit import AuditRecord
from aiguillage.sidecar.config import Limit, LimitScope, Pricing, Route, SharedStore, Target
from aiguillage.sidecar.limits import shared as shared_module
from aiguillage.sidecar.limits.errors import LimitRefused, LimitsUnavailable, StoreUnavailable
from aiguillage.sidecar.limits.quota import Caller, Limiter, LimiterSettings
from aiguillage.sidecar.limits.redis_store import RedisStore
from aiguillage.sidecar.limits.shared import SharedStore as SharedCounters
from aiguillage.sidecar.limits.store import Admission, BudgetCounter, Check, Settlement
from aiguillage.sidecar.metrics import new_metrics
from tests.sidecar.conftest import async_wait_for, closed_port

NOW = time.time()
EXPIRE = int(NOW) + 40 * 86400


def admission(lease: str) -> Admission:
    counter = BudgetCounter("t:budget:namespace:ns:m", 10, EXPIRE)
    return Admission((counter,), (), (Check("budget", 0, 10**6),), NOW, lease, NOW + 300)


class Counting(RedisStore):
    """A RedisStore that counts the calls that reach it."""

    calls = 0

    async def admit(self, admission: Admission) -> Any:
        self.calls += 1
        return await super().admit(admission)


async def test_while_down_admissions_fail_without_reaching_the_store_and_come_back(
    own_redis: RedisServer,
) -> None:
    errors: list[str] = []
    store = Counting(own_redis.url, None, timeout=2.0)
    shared = SharedCounters(store, errors.append)
    assert (await shared.admit(admission("a"))).admitted
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        await shared.admit(admission("b"))
    assert not shared.up
    calls = store.calls
    for lease in "cdefg":
        with pytest.raises(StoreUnavailable):
            await shared.admit(admission(lease))
    assert store.calls == calls  # none of them waited for the store
    assert errors[0] == "admit"
    own_redis.start()
    await async_wait_for(lambda: shared.up, within=20, what="the store marked up again")
    assert (await shared.admit(admission("h"))).admitted
    await shared.close()


async def test_settlements_made_while_down_are_sent_when_it_is_back(own_redis: RedisServer) -> None:
    shared = SharedCounters(RedisStore(own_redis.url, None, timeout=2.0), lambda _: None)
    admitted = [admission(f"r{i}") for i in range(3)]
    for adm in admitted:
        await shared.admit(adm)
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        await shared.admit(admission("x"))
    for adm in admitted:
        shared.settle(Settlement(adm.budgets, adm.lease, 7, True, ()), lambda spent: None)
    assert shared.pending == 3
    own_redis.start()
    await async_wait_for(lambda: shared.up, within=20, what="the store marked up again")
    assert shared.pending == 0
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    # The server came back empty (no persistence): what the three settled is all it has.
    assert client.hgetall("t:budget:namespace:ns:m") == {b"spent": b"21"}
    client.close()
    await shared.close()


async def test_a_full_queue_drops_the_oldest_and_counts_them(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_module, "MAX_PENDING", 2)
    errors: list[str] = []
    shared = SharedCounters(RedisStore(own_redis.url, None, timeout=2.0), errors.append)
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        await shared.admit(admission("x"))
    for i in range(5):
        adm = admission(f"r{i}")
        shared.settle(Settlement(adm.budgets, adm.lease, 1, True, ()), lambda spent: None)
    assert (shared.pending, shared.lost) == (2, 3)
    assert errors.count("settlement_lost") == 3
    await shared.close()


async def test_a_request_cancelled_while_admitted_gives_its_reservation_back(
    own_redis: RedisServer,
) -> None:
    """The client goes away while the store is deciding (here: while Redis is paused)."""
    price = Pricing(input_per_million=Decimal(1000), output_per_million=Decimal(1000))
    route = Route(
        name="chat",
        targets=(Target(provider="p", model="m", pricing=price),),
        limits=(Limit(policy="b", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal(5)),),
    )
    limiter = Limiter(new_metrics(), LimiterSettings(store_timeout=30.0))
    limiter.use(SharedStore(url=own_redis.url, key_prefix="t"), None)
    call = Call(Operation.CHAT, {"model": "chat", "messages": [], "max_tokens": 10}, False)
    record = AuditRecord(NOW, "r", "ns", "pod", "chat", "chat", "chat", False, {})
    own_redis.pause()
    admitting = asyncio.create_task(limiter.admit(route, call, record, Caller("ns", "sa", "p")))
    await asyncio.sleep(0)  # the script is on its way
    admitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await admitting
    own_redis.resume()
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)

    def reserved() -> list[Any]:
        keys = client.keys("t:budget:namespace:ns:*")
        return [client.hget(k, "reserved") for k in keys if not k.endswith(b":leases")]

    # Redis made the reservation once it could, then the limiter took it back.
    await async_wait_for(lambda: reserved() == [b"0"], within=20, what="the reservation back")
    client.close()
    await limiter.close()


async def test_without_the_store_closed_limits_refuse_and_open_ones_count_here() -> None:
    both = (
        Limit(policy="money", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal(5)),
        Limit(policy="pace", scope=LimitScope.WORKLOAD, requests_per_minute=2),
    )
    target = Target(provider="p", model="m")
    budgeted = Route(name="budgeted", targets=(target,), limits=both)
    paced = Route(name="paced", targets=(target,), limits=both[1:])
    metrics = new_metrics()
    limiter = Limiter(metrics)
    limiter.use(SharedStore(url=f"redis://127.0.0.1:{closed_port()}/0"), None)
    call = Call(Operation.CHAT, {"model": "x", "messages": [], "max_tokens": 10}, False)
    caller = Caller("ns", "sa", "pod")

    def record() -> AuditRecord:
        return AuditRecord(NOW, "r", "ns", "pod", "x", "x", "chat", False, {})

    refused = record()
    with pytest.raises(LimitsUnavailable, match=r"monthly budget of 5\.00 EUR of AIPolicy money"):
        await limiter.admit(budgeted, call, refused, caller)
    assert [(e["policy"], e["result"], e["whenStoreUnavailable"]) for e in refused.limits] == [
        ("money", "store_unavailable", "closed")
    ]
    # The rate limit fails open and is held in this sidecar's memory meanwhile.
    served = [record() for _ in range(3)]
    assert await limiter.admit(paced, call, served[0], caller) is not None
    assert await limiter.admit(paced, call, served[1], caller) is not None
    with pytest.raises(LimitRefused, match="rate limit of 2 requests per minute of AIPolicy pace"):
        await limiter.admit(paced, call, served[2], caller)
    assert served[0].limits[0]["whenStoreUnavailable"] == "open"
    counted = metrics.counters["aiguillage_limit_store_unavailable_total"]
    assert counted == {
        (("route", "budgeted"), ("policy", "money"), ("limit", "budget"), ("result", "refused")): 1,
        (
            ("route", "paced"),
            ("policy", "pace"),
            ("limit", "requests_per_minute"),
            ("result", "counted_locally"),
        ): 3,
    }
    await limiter.close()
