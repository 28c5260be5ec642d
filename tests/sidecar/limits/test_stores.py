"""The counter stores: Redis (Lua scripts, a real redis-server) and in-process, same semantics."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from aiguillage.sidecar.limits import keys
from aiguillage.sidecar.limits.memory_store import MemoryStore
from aiguillage.sidecar.limits.redis_store import RedisStore
from aiguillage.sidecar.limits.store import (
    Admission,
    BudgetCounter,
    Check,
    RateCounter,
    Settlement,
    Store,
)

# 20 s into the current minute (Redis expires keys by its own clock: times are real ones).
NOW = time.time() // 60 * 60 + 20
EXPIRE = int(NOW) + 40 * 86400
BUDGET = "t:budget:namespace:ns:2025-06"
OTHER = "t:budget:route:ns/chat:2025-06"
MINUTE = keys.minute(NOW)
REQUESTS = f"t:rate:requests:namespace:ns:{MINUTE}"
REQUESTS_BEFORE = f"t:rate:requests:namespace:ns:{MINUTE - 1}"


def admission(
    reserve: int = 30,
    ceiling: int = 100,
    *,
    now: float = NOW,
    lease: str = "L",
    lease_until: float | None = None,
    rate_ceiling: int | None = None,
    extra: tuple[BudgetCounter, ...] = (),
) -> Admission:
    checks = [Check("budget", 0, ceiling)]
    rates: tuple[RateCounter, ...] = ()
    if rate_ceiling is not None:
        minute = keys.minute(now)
        rates = (
            RateCounter(
                f"t:rate:requests:namespace:ns:{minute}",
                f"t:rate:requests:namespace:ns:{minute - 1}",
                1,
            ),
        )
        checks.append(Check("rate", 0, rate_ceiling))
    return Admission(
        budgets=(BudgetCounter(BUDGET, reserve, EXPIRE), *extra),
        rates=rates,
        checks=tuple(checks),
        now=now,
        lease=lease,
        lease_until=now + 300 if lease_until is None else lease_until,
    )


def settlement(adm: Admission, cost: int, release: bool = True) -> Settlement:
    return Settlement(adm.budgets, adm.lease, cost, release, ())


MakeStore = Callable[[], Store]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    made: list[Store] = []

    def make() -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore()
        else:
            store = RedisStore(request.getfixturevalue("redis_url"), None, timeout=5.0)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_reservations_fill_a_budget_and_the_next_request_is_refused(
    make_store: MakeStore,
) -> None:
    store = make_store()
    for i in range(3):
        levels = await store.admit(admission(lease=f"r{i}"))
        assert levels.admitted
        assert levels.budgets == ((0, 30 * i),)  # what it was before this request
    refused = await store.admit(admission(lease="r3"))
    assert (refused.admitted, refused.failed, refused.budgets) == (False, 0, ((0, 90),))
    # A refused request adds nothing.
    assert (await store.admit(admission(0, lease="peek"))).budgets == ((0, 90),)


async def test_settling_releases_the_reservation_and_adds_the_real_cost(
    make_store: MakeStore,
) -> None:
    store = make_store()
    first = admission(lease="a")
    for lease in ("a", "b", "c"):
        await store.admit(admission(lease=lease))
    assert await store.settle(settlement(first, 10)) == (10,)
    # 10 spent + 60 reserved + 30 = 100 fits now.
    levels = await store.admit(admission(lease="d"))
    assert levels.admitted
    assert levels.budgets == ((10, 60),)


async def test_a_reservation_is_released_once_even_if_settled_twice(
    make_store: MakeStore,
) -> None:
    store = make_store()
    adm = admission(lease="a")
    await store.admit(adm)
    await store.settle(settlement(adm, 5))
    # Sent again (its answer was lost): the cost counts twice, the reservation not.
    assert await store.settle(settlement(adm, 5)) == (10,)
    assert (await store.admit(admission(0, lease="peek"))).budgets == ((10, 0),)


async def test_checks_are_all_or_nothing(make_store: MakeStore) -> None:
    store = make_store()
    # The budget fits, the rate limit of 1 request per minute does not for the second.
    assert (await store.admit(admission(lease="a", rate_ceiling=1))).admitted
    second = await store.admit(admission(lease="b", rate_ceiling=1))
    assert (second.admitted, second.failed) == (False, 1)
    # Nothing of the refused request was reserved against the budget either.
    assert (await store.admit(admission(0, lease="peek"))).budgets == ((0, 30),)


async def test_an_ended_lease_is_taken_back_out_of_reserved(make_store: MakeStore) -> None:
    store = make_store()
    # A sidecar reserved, then died without settling: its lease ends at NOW + 10.
    await store.admit(admission(90, lease="dead", lease_until=NOW + 10))
    assert not (await store.admit(admission(30, lease="x", now=NOW + 5))).admitted
    later = await store.admit(admission(30, lease="y", now=NOW + 11))
    assert later.admitted
    assert later.budgets == ((0, 0),)
    # Settling the dead one late adds its cost but releases nothing more.
    assert await store.settle(settlement(admission(90, lease="dead"), 7)) == (7,)
    assert (await store.admit(admission(0, lease="peek", now=NOW + 12))).budgets == ((7, 30),)


async def test_counters_without_a_budget_count_spend_only(make_store: MakeStore) -> None:
    store = make_store()
    spend_only = BudgetCounter(OTHER, 0, EXPIRE)
    adm = admission(lease="a", extra=(spend_only,))
    assert (await store.admit(adm)).budgets == ((0, 0), (0, 0))
    assert await store.settle(settlement(adm, 12)) == (12, 12)
    assert (await store.admit(admission(0, lease="p", extra=(spend_only,)))).budgets == (
        (12, 0),
        (12, 0),
    )


async def test_the_previous_minute_counts_for_what_is_left_of_it(make_store: MakeStore) -> None:
    store = make_store()
    before = NOW - 60  # the same second of the previous minute
    for i in range(10):
        levels = await store.admit(admission(0, lease=f"p{i}", now=before, rate_ceiling=10))
        assert levels.admitted
    # 20 s into this minute, 2/3 of the previous one is still inside the window: 10 × 2/3
    # + 3 = 9.67 <= 10 lets a third request through, not a fourth.
    results = [
        (await store.admit(admission(0, lease=f"c{i}", rate_ceiling=10))).admitted for i in range(4)
    ]
    assert results == [True, True, True, False]
    late = NOW + 39  # 59 s in: 10 × 1/60 + 3 + 1 <= 10
    assert (await store.admit(admission(0, lease="z", now=late, rate_ceiling=10))).admitted


async def test_token_counters_are_corrected_by_the_settlement(make_store: MakeStore) -> None:
    store = make_store()
    tokens = RateCounter("t:rate:tokens:namespace:ns:x", "t:rate:tokens:namespace:ns:w", 500)
    adm = Admission((), (tokens,), (Check("rate", 0, 1000),), NOW, "a", NOW + 300)
    assert (await store.admit(adm)).admitted
    assert (await store.admit(Admission((), (tokens,), (), NOW, "b", NOW + 300))).rates == (
        (0, 500),
    )
    # The first used 120 tokens where 500 were estimated.
    await store.settle(Settlement((), "a", 0, True, ((tokens.key, 120 - 500),)))
    levels = await store.admit(Admission((), (tokens,), (), NOW, "c", NOW + 300))
    assert levels.rates == ((0, 620),)


async def test_many_concurrent_admissions_never_reserve_past_the_budget(
    make_store: MakeStore, request: pytest.FixtureRequest
) -> None:
    stores = [make_store() for _ in range(4)]  # four sidecars'
    results = await asyncio.gather(
        *(stores[i % 4].admit(admission(7, 100, lease=f"r{i}")) for i in range(80))
    )
    if "redis" in request.node.callspec.id:
        # One counter for the four: 14 × 7 = 98 <= 100 < 105.
        assert sum(r.admitted for r in results) == 14
        assert (await stores[0].admit(admission(0, lease="peek"))).budgets == ((0, 98),)
    else:
        # Without a shared store each sidecar holds the budget on its own: 4 × 14.
        assert sum(r.admitted for r in results) == 4 * 14


async def test_redis_keys_expire(redis_url: str) -> None:
    store = RedisStore(redis_url, None, timeout=5.0)
    adm = admission(lease="a", rate_ceiling=5)
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    await store.admit(adm)
    assert client.expiretime(BUDGET) == EXPIRE
    assert client.expiretime(keys.leases_key(BUDGET)) == EXPIRE
    assert 0 < client.ttl(REQUESTS) <= keys.RATE_TTL_SECONDS
    await store.settle(settlement(adm, 3))
    assert client.hgetall(BUDGET) == {b"spent": b"3", b"reserved": b"0"}
    assert client.expiretime(BUDGET) == EXPIRE
    assert not client.exists(keys.leases_key(BUDGET))  # no reservation left in flight
    client.close()
    await store.close()


async def test_both_stores_answer_the_same_to_the_same_operations(redis_url: str) -> None:
    """A seeded random mix of admissions (budgets, rates, ended leases) and settlements."""
    rng = random.Random(7)
    memory, shared = MemoryStore(), RedisStore(redis_url, None, timeout=5.0)
    admitted: list[Admission] = []
    now = NOW
    for step in range(300):
        now += rng.uniform(0, 3)
        if admitted and rng.random() < 0.4:
            adm = admitted.pop(rng.randrange(len(admitted)))
            cost = rng.randint(0, 40)
            assert await memory.settle(settlement(adm, cost)) == await shared.settle(
                settlement(adm, cost)
            ), step
            continue
        adm = admission(
            rng.randint(0, 40),
            400,
            now=now,
            lease=f"s{step}",
            lease_until=now + rng.uniform(1, 60),
            rate_ceiling=rng.choice([None, 3, 8]),
        )
        one, other = await memory.admit(adm), await shared.admit(adm)
        assert one == other, step
        if one.admitted:
            admitted.append(adm)
    await shared.close()
