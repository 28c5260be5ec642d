"""Config propagation on the real API server: after writing a namespace's outputs, the
operator annotates that namespace's injected pods (what makes a kubelet remount at once)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster, running_cluster
from tests.e2e.manifests import provider, route, secret, serve_one_route

pytestmark = pytest.mark.e2e

OUTPUTS = "aiguillage.dev/outputs-hash"


def pod(ns: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }


def annotation(cluster: Cluster, kind: str, name: str, ns: str) -> str | None:
    obj = cluster.get(kind, name, ns) or {}
    return (obj.get("metadata", {}).get("annotations") or {}).get(OUTPUTS)


def test_injected_pods_follow_every_change_of_their_namespaces_outputs(
    cluster: Cluster, kube_namespace: str
) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    eu, us = f"{op_ns}-eu", f"{op_ns}-us"
    injected = [pod(ns, {"aiguillage.dev/injected": "true"}) for _ in range(3)]
    other = pod(ns, {"app": "no-sidecar"})
    cluster.apply(*injected, other)
    cluster.apply(
        secret("k", op_ns, "sk-1"),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        provider(us, "https://us.example/v1", "US", "k", op_ns),
        route("chat", ns, "chat", eu),
    )
    names = [p["metadata"]["name"] for p in injected]

    def all_at(value: str | None) -> bool:
        return bool(value) and all(annotation(cluster, "pod", n, ns) == value for n in names)

    first = wait_for(lambda: annotation(cluster, "configmap", "aiguillage-config", ns), timeout=30)
    wait_for(lambda: all_at(first), timeout=30, what="pods annotated with the first outputs")

    cluster.apply(route("chat", ns, "chat", eu, us))  # a change of config
    second = wait_for(
        lambda: (v := annotation(cluster, "configmap", "aiguillage-config", ns)) != first and v,
        timeout=30,
    )
    wait_for(lambda: all_at(second), timeout=30, what="pods annotated with the second outputs")

    cluster.apply(secret("k", op_ns, "sk-2"))  # a key rotation: same config, new Secret
    third = wait_for(
        lambda: (v := annotation(cluster, "configmap", "aiguillage-config", ns)) != second and v,
        timeout=30,
    )
    wait_for(lambda: all_at(third), timeout=30, what="pods annotated after the key rotation")

    assert annotation(cluster, "pod", other["metadata"]["name"], ns) is None


def test_a_restarted_operator_patches_pods_it_had_not_reached(
    cluster: Cluster, kube_namespace: str
) -> None:
    ns = kube_namespace
    serve_one_route(cluster, ns)
    written = wait_for(lambda: annotation(cluster, "configmap", "aiguillage-config", ns))
    cluster.operator.stop()
    late = pod(ns, {"aiguillage.dev/injected": "true"})
    late["metadata"]["annotations"] = {OUTPUTS: "an-older-version"}
    cluster.apply(late)

    cluster.operator.start()

    wait_for(
        lambda: annotation(cluster, "pod", late["metadata"]["name"], ns) == written,
        timeout=30,
        what="the pod left behind to be brought up to date",
    )


def test_propagation_can_be_turned_off(
    crds: ControlPlane, tmp_path: Path, kube_namespace: str
) -> None:
    with running_cluster(crds, tmp_path, "--propagation-rate", "0") as cluster:
        ns = kube_namespace
        waiting = pod(ns, {"aiguillage.dev/injected": "true"})
        cluster.apply(waiting)
        eu = serve_one_route(cluster, ns)
        first = wait_for(lambda: annotation(cluster, "configmap", "aiguillage-config", ns))
        cluster.apply(route("second", ns, "second", eu))
        wait_for(
            lambda: annotation(cluster, "configmap", "aiguillage-config", ns) not in (None, first),
            timeout=30,
            what="a second write",
        )

        assert "config propagation is off" in cluster.operator.output()
        assert annotation(cluster, "pod", waiting["metadata"]["name"], ns) is None
