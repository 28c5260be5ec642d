"""Budgets and rate limits that hold across four sidecars sharing one real redis-server.

Each sidecar runs on its own event loop (thread), with its own Redis connections and its own
memory store, as four pods of a namespace would; 64 clients (16 per sidecar) send at once.
What was really spent is computed from what the simulated provider billed (its own token
counts × the target's prices), never from the sidecars' counters.

The bound these tests hold the sidecars to (README, "Limits and budgets"): spend ≤ budget +
the real cost, beyond their reservation, of requests admitted concurrently. Here every
request's real token count is below its estimate, so the bound is the budget itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import redis

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.redis_server import RedisServer
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.config import (
    Limit,
    LimitScope,
    Pricing,
    Route,
    SharedStore,
    SidecarConfig,
    Target,
)
from aiguillage.sidecar.limits import keys
from aiguillage.sidecar.limits.estimate import worst_case
from aiguillage.sidecar.limits.quota import LimiterSettings
from aiguillage.sidecar.main import Sidecar
from tests.sidecar.conftest import (
    CREDENTIALS,
    MESSAGES,
    RunningSidecar,
    route,
    two_provider_config,
    write_files,
)

# One euro per thousand tokens: a request of these tests costs about 0.01 EUR.
PER_MILLION = Decimal(1000)
PRICE = Pricing(input_per_million=PER_MILLION, output_per_million=PER_MILLION)
PARIS = ZoneInfo("Europe/Paris")
CLIENTS_PER_SIDECAR = 16
SIDECARS = 4
PREFIX = "fleet"

StartFleet = Callable[..., list[RunningSidecar]]


@pytest.fixture
def start_fleet(tmp_path: Path) -> Iterator[StartFleet]:
    """``start_fleet(config, settings=None)``: four sidecars, each on its own event loop."""
    started: list[tuple[LoopThread, Sidecar]] = []

    def start(
        config: SidecarConfig, settings: LimiterSettings | None = None
    ) -> list[RunningSidecar]:
        fleet = []
        for i in range(SIDECARS):
            root = tmp_path / f"pod{i}"
            write_files(root / "config", root / "credentials", config, CREDENTIALS)
            loop = LoopThread()
            sidecar = Sidecar(
                root / "config",
                root / "credentials",
                str(root / "audit.jsonl"),
                limiter_settings=settings or LimiterSettings(store_timeout=2.0),
            )
            loop.run(sidecar.start("127.0.0.1:0"))
            started.append((loop, sidecar))
            fleet.append(RunningSidecar(loop, sidecar, root))
        return fleet

    yield start
    for loop, sidecar in started:
        loop.run(sidecar.stop())
        loop.close()


def fleet_config(
    eu: OpenAISimulator, us: OpenAISimulator, url: str, *routes: Route
) -> SidecarConfig:
    return two_provider_config(eu, us, *routes).model_copy(
        update={
            "namespace": "support",
            "shared_store": SharedStore(url=url, key_prefix=PREFIX),
        }
    )


def priced(name: str, *limits: Limit) -> Route:
    """Route ``name`` to mistral-eu's model of the same name (so spend is told apart)."""
    target = Target(provider="mistral-eu", model=name, pricing=PRICE)
    return route(name, target).model_copy(update={"limits": limits})


def billed_eur(sim: OpenAISimulator, model: str) -> Decimal:
    """What the provider billed for ``model``: its token counts × the price."""
    tokens = sum(sim.billed.get(model, [0, 0]))
    return Decimal(tokens) * PER_MILLION / 1_000_000


def budget_counter(
    url: str, scope: LimitScope, ident: str, now: float | None = None
) -> dict[str, int]:
    month = keys.month(datetime.fromtimestamp(now or time.time(), PARIS), PARIS)
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        raw = client.hgetall(keys.budget_key(PREFIX, scope, ident, month))
    finally:
        client.close()
    return {"spent": int(raw.get(b"spent", 0)), "reserved": int(raw.get(b"reserved", 0))}


async def post(
    session: aiohttp.ClientSession, sc: RunningSidecar, model: str, **extra: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 20, **extra}
    async with session.post(sc.base_url + "/chat/completions", json=body) as resp:
        return resp.status, await resp.json(), {k.lower(): v for k, v in resp.headers.items()}


async def until_refused(session: aiohttp.ClientSession, sc: RunningSidecar, model: str) -> int:
    """Send until the budget refuses for the rest of the month; the number served.

    A refusal with a short Retry-After says that requests in flight hold what is left of
    the budget: those settle within moments, so the client asks again."""
    served = 0
    for _ in range(2000):
        status, body, headers = await post(session, sc, model)
        if status == 200:
            served += 1
            continue
        assert status == 429, body
        if int(headers["retry-after"]) > 60:
            return served
    raise AssertionError("never refused for the month")


async def test_a_budget_holds_across_four_sidecars_and_sixty_four_clients(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator, redis_url: str
) -> None:
    budget = Limit(
        policy="team-budgets", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal(2)
    )
    fleet = start_fleet(fleet_config(eu, us, redis_url, priced("chat", budget)))
    clients = [fleet[i % SIDECARS] for i in range(SIDECARS * CLIENTS_PER_SIDECAR)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        served = sum(await asyncio.gather(*(until_refused(session, sc, "chat") for sc in clients)))
        # Once every request is settled, the shared counter is what the provider billed...
        wait_for(
            lambda: (
                budget_counter(redis_url, LimitScope.NAMESPACE, "support")
                == {"spent": keys.to_nano(billed_eur(eu, "chat")), "reserved": 0}
            ),
            timeout=20,
            what="the shared counter equal to what the provider billed",
        )
        # ...and every client is refused.
        last = await asyncio.gather(*(post(session, sc, "chat") for sc in clients))
    spent = billed_eur(eu, "chat")
    # The worst case of one request: ~35 input tokens estimated and 20 output, at 1 EUR/1000.
    reservation = Decimal("0.06")
    print(f"\n{served} requests served, {spent} EUR spent of a 2 EUR budget")
    assert spent <= Decimal(2)  # the bound: no request's real cost exceeded its reservation
    assert spent > Decimal(2) - reservation  # and the budget was used, not refused early
    for status, body, headers in last:
        assert status == 429
        assert body["error"]["code"] == "limit_refused"
        assert body["error"]["message"].startswith(
            "monthly budget of 2.00 EUR of AIPolicy team-budgets for namespace support "
        )
        assert int(headers["retry-after"]) > 60  # until next month


async def test_rate_limits_hold_across_four_sidecars(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator, redis_url: str
) -> None:
    """Within one calendar minute the four let through exactly the limit (no tolerance)."""
    start = time.time()
    mid_minute = start // 60 * 60 + 5  # each sidecar's clock runs from 5 s into a minute
    settings = LimiterSettings(clock=lambda: mid_minute + (time.time() - start), store_timeout=2.0)
    requests = Limit(policy="rpm", scope=LimitScope.ROUTE, requests_per_minute=40)
    tokens = Limit(policy="tpm", scope=LimitScope.ROUTE, tokens_per_minute=1500)
    fleet = start_fleet(
        fleet_config(
            eu, us, redis_url, priced("by-requests", requests), priced("by-tokens", tokens)
        ),
        settings,
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients = range(SIDECARS * CLIENTS_PER_SIDECAR)
        by_requests = await asyncio.gather(
            *(post(session, fleet[i % SIDECARS], "by-requests") for i in [*clients, *clients])
        )
        by_tokens = await asyncio.gather(
            *(post(session, fleet[i % SIDECARS], "by-tokens") for i in [*clients, *clients])
        )
    statuses = [status for status, _, _ in by_requests]
    assert statuses.count(200) == 40
    assert statuses.count(429) == 2 * SIDECARS * CLIENTS_PER_SIDECAR - 40
    # Tokens are counted at their worst case when admitted, then corrected to the real count:
    # what the provider billed in this minute stays within the limit.
    billed = sum(eu.billed["by-tokens"])
    served = [status for status, _, _ in by_tokens].count(200)
    print(f"\ntokens per minute: {served} requests served, {billed} tokens billed of 1500")
    assert billed <= 1500
    body = {"model": "by-tokens", "messages": MESSAGES, "max_tokens": 20}
    worst = worst_case(Call(Operation.CHAT, body, False), priced("by-tokens")).tokens
    assert served >= 1500 // worst  # at least as many as fit at their worst case
    assert 429 in [status for status, _, _ in by_tokens]


async def test_redis_killed_mid_run_budgets_fail_closed_rates_open_and_counting_resumes(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    server = RedisServer(persist=True).start()
    try:
        await _killed_mid_run(start_fleet, eu, us, server)
    finally:
        server.stop()


async def _killed_mid_run(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator, server: RedisServer
) -> None:
    budget = Limit(policy="budgets", scope=LimitScope.ROUTE, budget_eur_per_month=Decimal(100))
    rate = Limit(policy="rates", scope=LimitScope.ROUTE, requests_per_minute=10_000)
    fleet = start_fleet(
        fleet_config(eu, us, server.url, priced("budgeted", budget), priced("rated", rate))
    )

    async def each(model: str, times: int = 2) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(
                *(post(session, sc, model) for sc in fleet for _ in range(times))
            )

    assert {s for s, _, _ in await each("budgeted") + await each("rated")} == {200}
    settled(server.url, eu, "budgeted", "rated")
    server.kill()
    # Budgets fail closed: 503 in the client's shape, naming the store and the budget.
    closed = await each("budgeted")
    assert {s for s, _, _ in closed} == {503}
    _, body, headers = closed[0]
    assert body["error"]["code"] == "limits_unavailable"
    assert (
        "monthly budget of 100.00 EUR of AIPolicy budgets for route budgeted"
        in (body["error"]["message"])
    )
    assert "whenStoreUnavailable: closed" in body["error"]["message"]
    assert int(headers["retry-after"]) >= 1
    # Rate limits fail open: served, counted in each sidecar, and the audit says so.
    opened = await each("rated", times=3)
    assert {s for s, _, _ in opened} == {200}
    record = fleet[0].audit_for(opened[0][2]["x-request-id"])
    [entry] = record["limits"]
    assert (entry["result"], entry["whenStoreUnavailable"]) == ("store_unavailable", "open")
    assert (
        fleet[0].metric(
            "aiguillage_limit_store_unavailable_total",
            route="budgeted",
            policy="budgets",
            limit="budget",
            result="refused",
        )
        == 2
    )
    assert fleet[0].metric("aiguillage_shared_store_errors_total", operation="admit") >= 1
    # Redis is back (with what it had written): each sidecar notices within its backoff.
    server.start()

    def budget_serves_everywhere() -> bool:
        return all(
            sc.raw(
                "POST",
                "/v1/chat/completions",
                json={"model": "budgeted", "messages": MESSAGES, "max_tokens": 20},
            ).status
            == 200
            for sc in fleet
        )

    wait_for(
        budget_serves_everywhere, timeout=30, interval=0.2, what="every sidecar using Redis again"
    )
    # Nothing was lost: what the provider billed on each route is what Redis counts, the
    # requests served during the outage included (their settlements waited for Redis).
    settled(server.url, eu, "budgeted", "rated")


def settled(url: str, sim: OpenAISimulator, *models: str) -> None:
    """Wait until each route's spend in Redis is what the provider billed for it."""
    for model in models:
        wait_for(
            lambda model=model: (
                budget_counter(url, LimitScope.ROUTE, f"support/{model}")
                == {"spent": keys.to_nano(billed_eur(sim, model)), "reserved": 0}
            ),
            timeout=20,
            what=f"{model} spend in Redis equal to what was billed",
        )


async def test_a_hung_redis_never_stalls_requests(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator, own_redis: RedisServer
) -> None:
    """Redis stops answering (SIGSTOP): calls time out after the store timeout, the store is
    marked down, and requests go on without waiting for it; it is used again once it answers."""
    rate = Limit(policy="rates", scope=LimitScope.NAMESPACE, requests_per_minute=10_000)
    fleet = start_fleet(
        fleet_config(eu, us, own_redis.url, priced("rated", rate)),
        LimiterSettings(store_timeout=0.5),
    )
    sc = fleet[0]
    body = {"model": "rated", "messages": MESSAGES, "max_tokens": 20}
    assert sc.raw("POST", "/v1/chat/completions", json=body).status == 200
    wait_for(
        lambda: budget_counter(own_redis.url, LimitScope.NAMESPACE, "support").get("spent"),
        timeout=20,
        what="the first request settled",
    )
    own_redis.pause()
    try:
        statuses = [sc.raw("POST", "/v1/chat/completions", json=body).status for _ in range(20)]
        assert statuses == [200] * 20
        # One call waited for the timeout; the others knew the store was down.
        assert sc.metric("aiguillage_shared_store_errors_total", operation="admit") == 1
    finally:
        own_redis.resume()
    wait_for(lambda: sc.runtime.limiter.shared.up, timeout=30, what="the store marked up again")
    # The 20 settlements that waited are in.
    spent = budget_counter(own_redis.url, LimitScope.NAMESPACE, "support")
    assert spent == {"spent": keys.to_nano(billed_eur(eu, "rated")), "reserved": 0}


async def test_streams_reserve_their_worst_case_and_settle_from_their_usage(
    start_fleet: StartFleet, eu: OpenAISimulator, us: OpenAISimulator, redis_url: str
) -> None:
    budget = Limit(policy="b", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal(100))
    sc = start_fleet(fleet_config(eu, us, redis_url, priced("chat", budget)))[0]
    eu.configure(chunks=6, chunk_interval=0.2)
    body = {"model": "chat", "messages": MESSAGES, "stream": True}  # no max_tokens: 4,096
    worst = worst_case(Call(Operation.CHAT, body, True), priced("chat"))

    def counter() -> dict[str, int]:
        return budget_counter(redis_url, LimitScope.NAMESPACE, "support")

    async with (
        aiohttp.ClientSession() as session,
        session.post(sc.base_url + "/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        await resp.content.readline()  # the stream has begun: its worst case is reserved
        assert counter() == {"spent": 0, "reserved": worst.cost_nano}
        await resp.read()
    whole = billed_eur(eu, "chat")
    wait_for(
        lambda: counter() == {"spent": keys.to_nano(whole), "reserved": 0},
        timeout=20,
        what="the stream settled from the usage the provider sent",
    )
    # A stream cut before its usage arrived is charged its worst case (the provider may bill it).
    eu.set_faults([{"kind": "reset_mid_stream", "after_chunks": 2}])
    async with (
        aiohttp.ClientSession() as session,
        session.post(sc.base_url + "/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        request_id = resp.headers["x-request-id"]
        text = await resp.text()
    assert '"error"' in text  # the client was told the stream broke
    assert sc.audit_for(request_id)["outcome"] == "stream_error"
    wait_for(
        lambda: counter() == {"spent": keys.to_nano(whole) + worst.cost_nano, "reserved": 0},
        timeout=20,
        what="the cut stream charged its reservation",
    )
