"""``python -m aiguillage.devtools.bench.limits``: what rate limits and budgets add to a request.

Two measurements, on this machine, in one process:

1. **The check itself**: :meth:`Limiter.admit` (on the request's path) and the settlement
   (after the answer, off the path) for a route with a budget, a requests-per-minute and a
   tokens-per-minute limit, counted in the sidecar's memory and in a local ``redis-server``
   (one Lua script call each way), against a route without limits. Median and 90th
   percentile in microseconds over ``--requests`` calls.
2. **Through a sidecar**: one client sending chat requests one at a time (c=1) to three
   sidecars on one simulated provider — a route without limits, the same route with the
   three limits in memory, and with them in Redis — in interleaved rounds; the median
   latency of each and what the limits add to it.

The numbers move with the machine's load: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import aiohttp

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.redis_server import RedisServer
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.audit import AuditRecord
from aiguillage.sidecar.config import (
    CONFIG_FILE,
    Limit,
    LimitScope,
    Pricing,
    Provider,
    Route,
    SharedStore,
    SidecarConfig,
    Target,
)
from aiguillage.sidecar.limits.quota import Caller, Limiter, LimiterSettings
from aiguillage.sidecar.main import Sidecar
from aiguillage.sidecar.metrics import new_metrics

PRICE = Pricing(input_per_million=Decimal("0.1"), output_per_million=Decimal("0.3"))
LIMITS = (
    Limit(policy="bench", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal(10**6)),
    Limit(
        policy="bench",
        scope=LimitScope.WORKLOAD,
        requests_per_minute=10**9,
        tokens_per_minute=10**12,
    ),
)
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
CALLER = Caller("bench", "default", "bench-pod")
# Timeouts long enough that a loaded machine measures latency, not the fail-closed path.
SETTINGS = LimiterSettings(store_timeout=2.0)


def _route(limited: bool, endpoint_model: str = "m") -> Route:
    target = Target(provider="p", model=endpoint_model, pricing=PRICE)
    return Route(name="chat", targets=(target,), limits=LIMITS if limited else ())


def _record() -> AuditRecord:
    return AuditRecord(0.0, "r", "bench", "bench-pod", "chat", "chat", "chat", False, {})


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9)]


async def _check(limiter: Limiter, route: Route, requests: int) -> tuple[list[float], list[float]]:
    """Admission and settlement times (µs) of ``requests`` calls, one at a time."""
    call = Call(Operation.CHAT, BODY, False)
    admit, settle = [], []
    for _ in range(requests):
        record = _record()
        start = time.perf_counter_ns()
        ticket = await limiter.admit(route, call, record, CALLER)
        admitted = time.perf_counter_ns()
        record.input_tokens, record.output_tokens, record.cost_eur = 5, 8, Decimal("0.0000029")
        limiter.settle(ticket, record)
        if limiter.shared is not None:  # the settlement the sidecar does not wait for
            await limiter.shared.idle()
        settled = time.perf_counter_ns()
        admit.append((admitted - start) / 1000)
        settle.append((settled - admitted) / 1000)
    return admit, settle


async def measure_check(
    redis_url: str, requests: int
) -> list[tuple[str, list[float], list[float]]]:
    rows = []
    bare = Limiter(new_metrics(), SETTINGS)
    rows.append(("no limits", *await _check(bare, _route(False), requests)))
    memory = Limiter(new_metrics(), SETTINGS)
    rows.append(("3 limits, in-process", *await _check(memory, _route(True), requests)))
    shared = Limiter(new_metrics(), SETTINGS)
    shared.use(SharedStore(url=redis_url, key_prefix="bench"), None)
    rows.append(("3 limits, local Redis", *await _check(shared, _route(True), requests)))
    await shared.close()
    return rows


def _config(sim_url: str, limited: bool, redis_url: str | None) -> SidecarConfig:
    return SidecarConfig(
        namespace="bench",
        providers={"p": Provider(api="openai", endpoint=sim_url + "/v1")},
        routes={"chat": _route(limited)},
        shared_store=None if redis_url is None else SharedStore(url=redis_url, key_prefix="e2e"),
    ).sealed()


async def _latencies(url: str, requests: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            start = time.perf_counter_ns()
            async with session.post(url + "/v1/chat/completions", json=BODY) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def measure_sidecars(redis_url: str, requests: int, rounds: int) -> dict[str, list[float]]:
    servers = LoopThread()
    root = Path(tempfile.mkdtemp(prefix="aiguillage-bench-limits-"))
    sim = OpenAISimulator("bench")
    servers.run(sim.start())
    sidecars: dict[str, Sidecar] = {}
    variants = {
        "no limits": (False, None),
        "3 limits, in-process": (True, None),
        "3 limits, local Redis": (True, redis_url),
    }
    try:
        for i, (name, (limited, store)) in enumerate(variants.items()):
            config_dir = root / f"s{i}" / "config"
            config_dir.mkdir(parents=True)
            (config_dir / CONFIG_FILE).write_bytes(_config(sim.url, limited, store).to_json())
            sidecar = Sidecar(
                config_dir,
                root / f"s{i}" / "credentials",
                str(root / f"a{i}"),
                limiter_settings=SETTINGS,
            )
            servers.run(sidecar.start("127.0.0.1:0"))
            sidecars[name] = sidecar
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, sidecar in sidecars.items():
                samples[name] += asyncio.run(_latencies(sidecar.url, requests // rounds))
        return samples
    finally:
        for sidecar in sidecars.values():
            servers.run(sidecar.stop())
        servers.run(sim.stop())
        servers.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    with RedisServer() as redis:
        check = asyncio.run(measure_check(redis.url, args.requests))
        through = measure_sidecars(redis.url, args.requests, args.rounds)
    print(f"The check ({args.requests} calls each; µs)")
    print("| route | admit p50 | admit p90 | settle p50 | settle p90 |")
    print("|---|---|---|---|---|")
    for name, admit, settle in check:
        (a50, a90), (s50, s90) = _quantiles(admit), _quantiles(settle)
        print(f"| {name} | {a50:.1f} | {a90:.1f} | {s50:.1f} | {s90:.1f} |")
    print(f"\nThrough a sidecar (c=1, {args.requests} requests each in {args.rounds} rounds; ms)")
    print("| route | p50 | added at p50 |")
    print("|---|---|---|")
    base = statistics.median(through["no limits"])
    for name, latencies in through.items():
        p50 = statistics.median(latencies)
        added = "—" if name == "no limits" else f"{p50 - base:+.3f}"
        print(f"| {name} | {p50:.3f} | {added} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
