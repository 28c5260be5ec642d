"""The level-triggered worker (``reconciler.py``) against a fake Kubernetes API: watch events
that arrive while the worker awaits API calls, and a namespace that outgrows a ConfigMap."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from aiguillage.operator import kube as k
from aiguillage.operator.inventory import Inventory
from aiguillage.operator.reconciler import Reconciler


class FakeKube:
    """What the reconciler writes, kept in dictionaries; every call yields to the loop (as a
    real one does while its thread runs), and ``during`` hooks run in the middle of a call."""

    def __init__(self) -> None:
        self.config_maps: dict[str, dict[str, str]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.statuses: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.during: dict[str, Callable[[], None]] = {}

    async def _call(self, name: str) -> None:
        await asyncio.sleep(0)
        hook = self.during.get(name)
        if hook is not None:
            hook()
        await asyncio.sleep(0)

    async def list_cluster(self, plural: str) -> list[dict[str, Any]]:
        return []

    async def list_secrets(self, namespace: str) -> list[dict[str, Any]]:
        return []

    async def list_namespaces(self) -> list[dict[str, Any]]:
        return []

    async def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        await self._call("read_config_map")
        return self.config_maps.get(namespace)

    async def apply_config_map(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        await self._call("apply_config_map")
        self.config_maps[namespace] = data

    async def apply_secret(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        await self._call("apply_secret")
        self.secrets[namespace] = data

    async def delete_outputs(self, namespace: str, config_map: str, secret: str) -> None:
        await self._call("delete_outputs")
        self.config_maps.pop(namespace, None)
        self.secrets.pop(namespace, None)

    async def patch_status(
        self, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> None:
        await self._call("patch_status")
        self.statuses[(plural, namespace, name)] = status


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube()

    async def nothing_written(*_: Any) -> dict[str, Any]:
        return {}

    async def no_secret(*_: Any) -> None:
        return None

    async def no_event(*_: Any) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(k, "managed_outputs", nothing_written)
    monkeypatch.setattr(k, "read_secret_data", no_secret)
    monkeypatch.setattr(k, "post_event", no_event)
    return fake


def provider(name: str, models: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "aiguillage.dev/v1alpha1",
        "kind": "AIProvider",
        "metadata": {"name": name, "generation": 1, "uid": f"uid-{name}"},
        "spec": {
            "api": "openai",
            "endpoint": f"https://{name}.example/v1",
            "residency": {"location": "FR", "jurisdiction": "FR"},
            "auth": {"none": {}},
            "models": [{"name": f"m{i}"} for i in range(models)],
        },
    }


def route(name: str, provider_name: str, targets: int = 1, created: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "aiguillage.dev/v1alpha1",
        "kind": "AIRoute",
        "metadata": {
            "name": name,
            "namespace": "apps",
            "generation": 1,
            "uid": f"uid-{name}",
            "creationTimestamp": f"2026-01-01T00:{created // 60:02d}:{created % 60:02d}Z",
        },
        "spec": {
            "model": name,
            "targets": [{"provider": provider_name, "model": f"m{i}"} for i in range(targets)],
        },
    }


async def started(kube: FakeKube) -> Reconciler:
    reconciler = Reconciler(kube, Inventory())  # type: ignore[arg-type]
    await reconciler.prime()
    return reconciler


def ready(kube: FakeKube, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
    status = kube.statuses.get((plural, namespace, name)) or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


async def test_providers_created_while_statuses_are_being_written(kube: FakeKube) -> None:
    reconciler = await started(kube)
    for i in range(5):
        reconciler.on_provider(provider(f"p{i}"), deleted=False)
    more = iter(range(5, 55))

    # A watch event arrives while each status patch is awaited.
    def one_more() -> None:
        n = next(more, None)
        if n is not None:
            reconciler.on_provider(provider(f"p{n}"), deleted=False)

    kube.during["patch_status"] = one_more
    while len(reconciler.providers) < 55:
        # raised "dictionary changed size during iteration"
        await reconciler.reconcile_providers()
    del kube.during["patch_status"]
    await reconciler.reconcile_providers()

    assert len(reconciler.providers) == 55
    assert all(ready(kube, "aiproviders", None, f"p{i}")["status"] == "True" for i in range(55))


async def test_a_route_deleted_while_its_namespace_is_written(kube: FakeKube) -> None:
    reconciler = await started(kube)
    reconciler.on_provider(provider("p"), deleted=False)
    reconciler.on_route(route("good", "p"), deleted=False)
    bad = route("bad", "p")
    bad["spec"]["strategy"] = "fastest"  # invalid: reported on its status
    reconciler.on_route(bad, deleted=False)
    kube.during["apply_config_map"] = lambda: reconciler.on_route(bad, deleted=True)

    await reconciler.reconcile("apps")  # raised KeyError

    assert ready(kube, "airoutes", "apps", "good")["status"] == "True"
    assert ("airoutes", "apps", "bad") not in kube.statuses


async def test_a_burst_of_providers_and_routes_settles_without_errors(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler = await started(kube)
    worker = asyncio.create_task(reconciler.run())
    try:
        for i in range(50):
            reconciler.on_provider(provider(f"p{i}"), deleted=False)
            if i % 5 == 0:
                reconciler.on_route(route(f"r{i}", f"p{i}"), deleted=False)
            await asyncio.sleep(0)
        deadline = time.monotonic() + 30
        while not all(
            ready(kube, "aiproviders", None, f"p{i}").get("status") == "True" for i in range(50)
        ):
            assert time.monotonic() < deadline, "providers never all got a status"
            await asyncio.sleep(0.01)
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    served = json.loads(kube.config_maps["apps"]["config.json"])["routes"]
    assert sorted(served) == sorted(f"r{i}" for i in range(0, 50, 5))


async def test_a_namespace_too_large_for_a_configmap_is_written_within_the_limit(
    kube: FakeKube,
) -> None:
    reconciler = await started(kube)
    reconciler.on_provider(provider("p", models=64), deleted=False)
    for i in range(100):
        reconciler.on_route(route(f"r{i:03d}", "p", targets=64, created=i), deleted=False)

    await reconciler.reconcile("apps")

    data = kube.config_maps["apps"]
    assert sum(len(key) + len(value) for key, value in data.items()) < 1024 * 1024
    newest = ready(kube, "airoutes", "apps", "r099")
    assert newest["status"] == "False"
    assert newest["reason"] == "ConfigTooLarge"
    assert ready(kube, "airoutes", "apps", "r000")["reason"] == "Serving"
    assert kube.statuses[("airoutes", "apps", "r099")]["targets"] == "0/64"


def us_provider() -> dict[str, Any]:
    body = provider("us")
    body["spec"]["residency"] = {"location": "US", "jurisdiction": "US"}
    return body


def eu_policy(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "aiguillage.dev/v1alpha1",
        "kind": "AIPolicy",
        "metadata": {"name": "eu-only", "generation": generation, "uid": "uid-pol"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"data": "customer"}},
            "residency": {"locations": ["EU"]},
            **spec,
        },
    }


async def wait(condition: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def served_providers(kube: FakeKube) -> list[str]:
    config = json.loads(kube.config_maps["apps"]["config.json"])
    return [t["provider"] for r in config["routes"].values() for t in r["targets"]]


def namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "apps", "labels": labels}}


async def test_policy_and_namespace_label_changes_re_render_the_namespace(kube: FakeKube) -> None:
    reconciler = await started(kube)
    worker = asyncio.create_task(reconciler.run())
    try:
        reconciler.on_namespace(namespace({"data": "customer"}), deleted=False)
        reconciler.on_provider(provider("eu"), deleted=False)
        reconciler.on_provider(us_provider(), deleted=False)
        body = route("chat", "eu")
        body["spec"]["targets"].append({"provider": "us", "model": "m0", "priority": 1})
        reconciler.on_route(body, deleted=False)
        await wait(lambda: "apps" in kube.config_maps and served_providers(kube) == ["eu", "us"])

        reconciler.on_policy(eu_policy(), deleted=False)
        await wait(lambda: served_providers(kube) == ["eu"])
        status = kube.statuses[("airoutes", "apps", "chat")]
        assert status["policies"] == ["eu-only"]
        compliant = next(c for c in status["conditions"] if c["type"] == "PolicyCompliant")
        assert compliant["reason"] == "ForbiddenByPolicy"
        await wait(lambda: ("aipolicies", None, "eu-only") in kube.statuses)
        pol = kube.statuses[("aipolicies", None, "eu-only")]
        assert (pol["selector"], pol["selectedNamespaces"], pol["matchedRoutes"]) == (
            "data=customer",
            1,
            1,
        )
        assert pol["residency"] == "locations [EU]"

        # The namespace loses the label: the policy no longer selects it.
        reconciler.on_namespace(namespace({"data": "public"}), deleted=False)
        await wait(lambda: served_providers(kube) == ["eu", "us"])
        await wait(
            lambda: kube.statuses[("aipolicies", None, "eu-only")]["selectedNamespaces"] == 0
        )
        # It gets it back, and then the policy is deleted.
        reconciler.on_namespace(namespace({"data": "customer"}), deleted=False)
        await wait(lambda: served_providers(kube) == ["eu"])
        reconciler.on_policy(eu_policy(), deleted=True)
        await wait(lambda: served_providers(kube) == ["eu", "us"])
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker


async def test_each_written_namespace_gets_an_audit_signing_key(kube: FakeKube) -> None:
    made: list[str] = []

    class Keys:
        async def ensure(self, namespace: str) -> None:
            made.append(namespace)

    rec = Reconciler(kube, Inventory("ops"), audit_keys=Keys())  # type: ignore[arg-type]
    rec.on_provider(provider("p"), deleted=False)
    rec.on_route(route("a", "p"), deleted=False)
    await rec.reconcile("apps")
    assert made == ["apps"]
    await rec.reconcile("empty")  # nothing to write there: no key either
    assert made == ["apps"]
