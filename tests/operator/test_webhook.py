"""The admission handlers (``operator/webhook.py``) called directly, with a fake API client."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from aiguillage.operator.injection import SidecarSpec
from aiguillage.operator.reconciler import Reconciler
from aiguillage.operator.webhook import inject_sidecar, validate_route
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


async def test_injection_counts_what_it_did() -> None:
    memo = memo_with(FakeCustom())
    memo["sidecar"] = SidecarSpec(image="img:1")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}
    refused = {"metadata": {"name": "q"}, "spec": {"hostNetwork": True, "containers": []}}
    warnings: list[str] = []

    await inject_sidecar(body=kopf.Body(pod), patch=kopf.Patch(), namespace="shop", dryrun=True,
                         memo=memo, warnings=warnings)  # fmt: skip
    with pytest.raises(kopf.AdmissionError, match=r"spec\.hostNetwork"):
        await inject_sidecar(body=kopf.Body(refused), patch=kopf.Patch(), namespace="shop",
                             dryrun=True, memo=memo, warnings=[])  # fmt: skip

    assert dict(memo["injections"]) == {"injected": 1, "refused": 1}
    assert warnings == [
        "namespace shop has no AIRoute: its aiguillage sidecar serves no model until one is applied"
    ]
