"""The order in which a route's targets are tried, per strategy.

Every strategy returns *all* the route's targets, best first, so failover can
walk the rest. Residency and circuit breakers are not decided here: they are
checked before each attempt (see :mod:`aiguillage.sidecar.forward`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import groupby

from aiguillage.sidecar.config import Route, Strategy, Target
from aiguillage.sidecar.health import HealthBoard

Random = Callable[[], float]


def weighted_shuffle(targets: Sequence[Target], rand: Random) -> list[Target]:
    """A random order where each target's chance of coming first is its share of weight.

    Efraimidis–Spirakis: sort by u**(1/w). Weight-0 targets keep their order, last.
    """
    live = [t for t in targets if t.weight > 0]
    keyed = sorted(live, key=lambda t: rand() ** (1.0 / t.weight), reverse=True)
    return keyed + [t for t in targets if t.weight == 0]


def _price(t: Target) -> Decimal | None:
    if t.pricing is None:
        return None
    return t.pricing.input_per_million + t.pricing.output_per_million


def order(route: Route, health: HealthBoard, rand: Random = random.random) -> list[Target]:
    targets = route.targets
    if len(targets) == 1:
        return [targets[0]]
    static = route.static_order
    if static is not None:
        return list(static)
    strategy = route.strategy
    if strategy is Strategy.PRIORITY:
        tiers = groupby(sorted(targets, key=lambda t: t.priority), key=lambda t: t.priority)
        return [t for _, tier in tiers for t in weighted_shuffle(list(tier), rand)]
    if strategy is Strategy.WEIGHTED:
        return weighted_shuffle(targets, rand)
    if strategy is Strategy.COST:
        # Unknown prices go last; equal prices keep priority order.
        return sorted(
            targets,
            key=lambda t: (_price(t) is None, _price(t) or Decimal(0), t.priority),
        )
    # LATENCY: targets never measured go first, so they get measured.
    return sorted(
        targets,
        key=lambda t: (health.of(t.provider, t.model).latency or 0.0, t.priority),
    )
