"""Order of a route's targets per strategy (``routing.py``)."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import Pricing, Route, Strategy, Target
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.routing import order, weighted_shuffle
from tests.sidecar.conftest import StartSidecar, eu_target, route, two_provider_config, us_target

DRAWS = 4000


def t(provider: str, priority: int = 0, weight: int = 1, price: str | None = None) -> Target:
    pricing = None
    if price is not None:
        pricing = Pricing(input_per_million=Decimal(price), output_per_million=Decimal(price))
    return Target(provider=provider, model="m", priority=priority, weight=weight, pricing=pricing)


def r(strategy: Strategy, *targets: Target) -> Route:
    return Route(name="r", strategy=strategy, targets=targets)


def names(targets: list[Target]) -> list[str]:
    return [x.provider for x in targets]


def first_counts(route: Route, seed: int = 1) -> Counter[str]:
    rng = random.Random(seed)
    board = HealthBoard()
    return Counter(order(route, board, rng.random)[0].provider for _ in range(DRAWS))


def test_every_strategy_returns_every_target_once() -> None:
    targets = (t("a", 1, 2, "1"), t("b", 0, 1, "3"), t("c", 2, 0), t("d", 0, 5, "2"))
    for strategy in Strategy:
        ordered = order(r(strategy, *targets), HealthBoard(), random.Random(0).random)
        assert sorted(names(ordered)) == ["a", "b", "c", "d"], strategy


def test_priority_tiers_go_lowest_first() -> None:
    route = r(Strategy.PRIORITY, t("backup", 2), t("main", 0), t("second", 1))
    assert names(order(route, HealthBoard())) == ["main", "second", "backup"]


def test_priority_splits_a_tier_by_weight_and_keeps_tiers() -> None:
    route = r(Strategy.PRIORITY, t("fallback", 1), t("a", 0, 3), t("b", 0, 1))
    rng = random.Random(42)
    orders = [names(order(route, HealthBoard(), rng.random)) for _ in range(DRAWS)]

    assert all(o[2] == "fallback" for o in orders)
    share_a = sum(o[0] == "a" for o in orders) / DRAWS
    assert share_a == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("weights", [(1, 1), (3, 1), (1, 4, 5)])
def test_weighted_split_follows_weights(weights: tuple[int, ...]) -> None:
    targets = [t(f"p{i}", weight=w) for i, w in enumerate(weights)]
    counts = first_counts(r(Strategy.WEIGHTED, *targets))
    total = sum(weights)

    for i, w in enumerate(weights):
        assert counts[f"p{i}"] / DRAWS == pytest.approx(w / total, abs=0.03)


def test_weight_zero_is_never_first_but_still_a_fallback() -> None:
    route = r(Strategy.WEIGHTED, t("off", weight=0), t("on", weight=1), t("also", weight=1))
    rng = random.Random(3)
    for _ in range(500):
        ordered = names(order(route, HealthBoard(), rng.random))
        assert ordered[-1] == "off"


def test_weighted_shuffle_is_reproducible_with_a_seed() -> None:
    targets = [t("a", weight=1), t("b", weight=2), t("c", weight=3)]
    one = names(weighted_shuffle(targets, random.Random(9).random))
    two = names(weighted_shuffle(targets, random.Random(9).random))
    assert one == two


def test_cost_picks_the_cheapest_first() -> None:
    route = r(
        Strategy.COST,
        t("unknown-price", 0),
        t("dear", 0, price="5"),
        t("cheap", 1, price="0.5"),
        t("mid", 0, price="1"),
    )
    assert names(order(route, HealthBoard())) == ["cheap", "mid", "dear", "unknown-price"]


def test_cost_ties_keep_priority_order() -> None:
    route = r(Strategy.COST, t("late", 2, price="1"), t("early", 0, price="1"))
    assert names(order(route, HealthBoard())) == ["early", "late"]


def test_cost_free_is_cheapest() -> None:
    route = r(Strategy.COST, t("paid", 0, price="0.1"), t("free", 1, price="0"))
    assert names(order(route, HealthBoard()))[0] == "free"


def test_latency_prefers_the_fastest_measured() -> None:
    route = r(Strategy.LATENCY, t("slow"), t("fast"), t("medium"))
    board = HealthBoard()
    board.of("slow", "m").succeeded(2.0)
    board.of("fast", "m").succeeded(0.1)
    board.of("medium", "m").succeeded(0.5)

    assert names(order(route, board)) == ["fast", "medium", "slow"]


def test_latency_tries_unmeasured_targets_first() -> None:
    route = r(Strategy.LATENCY, t("measured"), t("new"))
    board = HealthBoard()
    board.of("measured", "m").succeeded(0.05)

    assert names(order(route, board))[0] == "new"


def test_latency_follows_new_measurements() -> None:
    route = r(Strategy.LATENCY, t("a"), t("b"))
    board = HealthBoard()
    board.of("a", "m").succeeded(0.1)
    board.of("b", "m").succeeded(0.2)
    assert names(order(route, board))[0] == "a"

    for _ in range(10):  # a gets slow
        board.of("a", "m").succeeded(1.0)
    assert names(order(route, board))[0] == "b"


def test_latency_strategy_moves_traffic_to_the_faster_provider(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(
        two_provider_config(eu, us, route("chat", eu_target(0), us_target(1), strategy="latency"))
    )
    eu.set_faults([{"kind": "slow_first_byte", "delay": 0.5}], repeat=True)
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    served = [sc.raw("POST", "/v1/chat/completions", json=body) for _ in range(5)]

    # both are measured once (unmeasured targets go first), then the faster one wins
    assert [r.headers["x-aiguillage-provider"] for r in served] == [
        "mistral-eu",
        "openai-us",
        "openai-us",
        "openai-us",
        "openai-us",
    ]
