"""The admission handlers (``operator/webhook.py``) called directly, with a fake API client."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from aiguillage.operator.injection import SidecarSpec
from aiguillage.operator.reconciler import Reconciler
from aiguillage.operator.webhook import inject_sidecar, prepare, validate_route
from tests.e2e.manifests import provider, route


class FakeCustom:
    """The API server's AIProviders, for the webhook's read-through on a watch miss."""

    def __init__(self, *providers: dict[str, Any]) -> None:
        self.providers = {p["metadata"]["name"]: p for p in providers}
        self.reads: list[str] = []

    def get_cluster_custom_object(self, group: str, version: str, plural: str, name: str) -> Any:
        self.reads.append(name)
        if name not in self.providers:
            raise ApiException(status=404)
        return self.providers[name]


class FakeKube:
    def __init__(self, custom: FakeCustom) -> None:
        self.custom = custom


def memo_with(custom: FakeCustom) -> kopf.Memo:
    reconciler = Reconciler(FakeKube(custom))  # type: ignore[arg-type]
    reconciler.primed = True
    memo = kopf.Memo()
    prepare(memo)
    memo["reconciler"] = reconciler
    return memo


async def validate(memo: kopf.Memo, body: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    await validate_route(body=kopf.Body(body), namespace="shop", memo=memo, warnings=warnings)
    return warnings


async def test_a_provider_the_watch_has_not_delivered_yet_is_read_from_the_api() -> None:
    custom = FakeCustom(provider("eu", "https://eu.example/v1", "FR", "k", "t"))

    await validate(memo_with(custom), route("chat", "shop", "chat", "eu"))

    assert custom.reads == ["eu"]


async def test_a_provider_the_api_does_not_have_either_is_refused() -> None:
    custom = FakeCustom()

    with pytest.raises(kopf.AdmissionError, match='provider "ghost" does not exist'):
        await validate(memo_with(custom), route("chat", "shop", "chat", "ghost"))


async def test_injection_is_off_without_a_sidecar_image() -> None:
    patch = kopf.Patch()
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}
    await inject_sidecar(body=kopf.Body(pod), patch=patch, namespace="shop", dryrun=False,
                         memo=kopf.Memo(), warnings=[])  # fmt: skip
    assert not patch


async def test_injection_counts_what_it_did_in_the_shared_memo() -> None:
    base = memo_with(FakeCustom())
    base["sidecar"] = SidecarSpec(image="img:1")
    memo = copy.copy(base)  # what kopf hands an admission handler
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}
    refused = {"metadata": {"name": "q"}, "spec": {"hostNetwork": True, "containers": []}}
    warnings: list[str] = []

    await inject_sidecar(body=kopf.Body(pod), patch=kopf.Patch(), namespace="shop", dryrun=True,
                         memo=memo, warnings=warnings)  # fmt: skip
    with pytest.raises(kopf.AdmissionError, match=r"spec\.hostNetwork"):
        await inject_sidecar(body=kopf.Body(refused), patch=kopf.Patch(), namespace="shop",
                             dryrun=True, memo=memo, warnings=[])  # fmt: skip

    assert dict(base["injections"]) == {"injected": 1, "refused": 1}
    assert warnings == [
        "namespace shop has no AIRoute: its aiguillage sidecar serves no model until one is applied"
    ]


class FakeCore:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append(body)


async def test_one_no_route_event_per_namespace_however_many_pods() -> None:
    base = memo_with(FakeCustom())
    base["sidecar"] = SidecarSpec(image="img:1")
    core = FakeCore()
    base["reconciler"].kube.core = core
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9", "uid": "u-1",
             "controller": True}  # fmt: skip
    for _ in range(3):
        pod = {"metadata": {"generateName": "web-7d9-", "ownerReferences": [owner]},
               "spec": {"containers": [{"name": "app"}]}}  # fmt: skip
        await inject_sidecar(body=kopf.Body(pod), patch=kopf.Patch(), namespace="shop",
                             dryrun=False, memo=copy.copy(base), warnings=[])  # fmt: skip
    await asyncio.gather(*base["event_tasks"])

    assert len(core.events) == 1
    event = core.events[0]
    assert (event["reason"], event["type"]) == ("NoAIRoute", "Warning")
    assert event["involvedObject"]["kind"] == "ReplicaSet"
    assert event["involvedObject"]["uid"] == "u-1"
