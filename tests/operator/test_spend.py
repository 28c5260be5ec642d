"""Spend in AIRoute status (spend.py), read from a real redis-server the way sidecars write it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from aiguillage.devtools.redis_server import RedisServer
from aiguillage.operator import spend
from aiguillage.operator.reconciler import Reconciler
from aiguillage.sidecar.limits import keys
from tests.operator.test_reconciler import FakeKube, provider, route, started, wait
from tests.operator.test_reconciler import kube as kube  # the fixture

NOW = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # already April in Paris
MONTH = "2026-04"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(password="s3cret") as server:
        yield server


def spend_policy(url: str | None, **store: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "namespaceSelector": {},
        "limits": [
            {"per": "route", "budgetEurPerMonth": "10"},
            {"per": "route", "budgetEurPerMonth": "40"},  # the smaller one is shown
            {"per": "namespace", "budgetEurPerMonth": "100"},
        ],
    }
    if url:
        spec["sharedStore"] = {"url": url, "keyPrefix": "test", **store}
    return {"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIPolicy",
            "metadata": {"name": "budget", "generation": 1}, "spec": spec}  # fmt: skip


def password_secret(namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": "redis", "namespace": namespace},
            "stringData": {"password": "s3cret"}}  # fmt: skip


async def serving(kube: FakeKube, policy: dict[str, Any]) -> Reconciler:
    reconciler = await started(kube)
    reconciler.on_secret(password_secret(reconciler.inv.operator_namespace), deleted=False)
    reconciler.on_policy(policy, deleted=False)
    reconciler.on_provider(provider("eu"), deleted=False)
    reconciler.on_route(route("chat", "eu"), deleted=False)
    reconciler.on_route(route("other", "eu"), deleted=False)
    worker = asyncio.create_task(reconciler.run())
    try:
        await wait(
            lambda: "apps" in reconciler.configs and len(reconciler.configs["apps"].routes) == 2
        )
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    return reconciler


def spent(server: RedisServer, scope: str, ident: str, eur: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
    key = f"test:budget:{scope}:{ident}:{MONTH}"
    client.hset(key, keys.SPENT, keys.to_nano(Decimal(eur)))
    client.close()


def status_spend(kube: FakeKube, name: str) -> dict[str, Any]:
    return dict(kube.statuses[("airoutes", "apps", name)]["spend"])


async def test_spend_and_budget_use_per_route_and_namespace(
    kube: FakeKube, redis_server: RedisServer
) -> None:
    store = {"passwordSecretRef": {"name": "redis", "key": "password"}}
    reconciler = await serving(kube, spend_policy(redis_server.url, **store))
    spent(redis_server, "route", "apps/chat", "1.25")
    spent(redis_server, "namespace", "apps", "37.5")
    reader = spend.SpendReader()
    try:
        await spend.refresh(reconciler, reader, NOW)
    finally:
        await reader.close()
    assert status_spend(kube, "chat") == {
        "month": MONTH,
        "route": {"monthToDateEur": "1.2500", "budgetEur": "10", "budgetUsedPercent": 12},
        "namespace": {"monthToDateEur": "37.5000", "budgetEur": "100", "budgetUsedPercent": 37},
        "aggregated": True,
        "asOf": "2026-03-31T22:30:00Z",
        "message": "",
        "summary": "1.25 EUR (12% of 10)",
    }
    assert status_spend(kube, "other")["route"]["monthToDateEur"] == "0.0000"

    # Unchanged figures are not written again; changed ones are.
    kube.statuses.clear()
    reader = spend.SpendReader()
    try:
        await spend.refresh(reconciler, reader, NOW)
        assert kube.statuses == {}
        spent(redis_server, "route", "apps/chat", "12")
        await spend.refresh(reconciler, reader, NOW)
    finally:
        await reader.close()
    assert status_spend(kube, "chat")["summary"] == "12.00 EUR (120% of 10)"
    assert ("airoutes", "apps", "other") not in kube.statuses


async def test_an_unreadable_store_keeps_the_last_figures_and_says_why(
    kube: FakeKube, redis_server: RedisServer
) -> None:
    # No password given: the server refuses every command.
    reconciler = await serving(kube, spend_policy(redis_server.url))
    reconciler.routes[("apps", "chat")].status["spend"] = {"summary": "3.00 EUR", "month": MONTH}
    reader = spend.SpendReader()
    try:
        await spend.refresh(reconciler, reader, NOW)
    finally:
        await reader.close()
    shown = status_spend(kube, "chat")
    assert shown["summary"] == "3.00 EUR"
    assert shown["message"] == (
        f"shared store {redis_server.url} could not be read (AuthenticationError)"
    )


async def test_without_a_shared_store_spend_is_not_aggregated(kube: FakeKube) -> None:
    reconciler = await serving(kube, spend_policy(None))
    await spend.refresh(reconciler, spend.SpendReader(), NOW)
    assert status_spend(kube, "chat") == {
        "aggregated": False,
        "asOf": "2026-03-31T22:30:00Z",
        "message": "no shared store: each sidecar counts its own spend, nothing is aggregated",
        "summary": "per sidecar",
    }


def test_months_are_those_of_the_store_time_zone() -> None:
    assert keys.month(NOW, ZoneInfo("Europe/Paris")) == MONTH
    assert keys.month(NOW, ZoneInfo("UTC")) == "2026-03"
