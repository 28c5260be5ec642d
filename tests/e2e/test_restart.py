"""The operator can die at any point: a restart converges to the same output, and nothing
rendered is deleted while it is down or starting."""

from __future__ import annotations

import json

import pytest

from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster, wait_until_primed
from tests.e2e.manifests import provider, route, secret

pytestmark = pytest.mark.e2e


def outputs(cluster: Cluster, ns: str) -> tuple[str, dict[str, str]] | None:
    cm = cluster.get("configmap", "aiguillage-config", ns)
    s = cluster.get("secret", "aiguillage-credentials", ns)
    if cm is None or s is None:
        return None
    return cm["data"]["config.json"], dict(s.get("data") or {})


def test_killed_mid_render_then_restarted_converges(cluster: Cluster, kube_namespace: str) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    eu = f"{op_ns}-eu"
    cluster.apply(
        secret("k", op_ns, "sk-1"),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        *(route(f"r{i}", ns, f"model-{i}", eu) for i in range(20)),
    )
    wait_for(
        lambda: (o := outputs(cluster, ns)) and len(json.loads(o[0])["routes"]) == 20,
        timeout=60,
        what="20 routes rendered",
    )
    before = outputs(cluster, ns)
    # Change things and kill the operator while it is working on them.
    cluster.apply(*(route(f"s{i}", ns, f"second-{i}", eu) for i in range(10)))
    cluster.operator.kill()
    # While the operator is down, what was rendered stays.
    assert outputs(cluster, ns) is not None
    cluster.operator.start()
    wait_until_primed(cluster.operator)
    wait_for(
        lambda: (o := outputs(cluster, ns)) and len(json.loads(o[0])["routes"]) == 30,
        timeout=60,
        what="30 routes rendered after restart",
    )
    after = outputs(cluster, ns)
    assert after is not None
    assert before is not None
    assert after[1] == before[1]
    # A second restart with nothing changed rewrites nothing.
    cm = cluster.get("configmap", "aiguillage-config", ns)
    assert cm is not None
    version = cm["metadata"]["resourceVersion"]
    cluster.operator.stop()
    cluster.operator.start()
    wait_until_primed(cluster.operator)
    wait_for(lambda: "primed:" in cluster.operator.output(), timeout=30)
    assert "wrote config" not in cluster.operator.output().rsplit("primed:", 1)[1]
    cm = cluster.get("configmap", "aiguillage-config", ns)
    assert cm is not None
    assert cm["metadata"]["resourceVersion"] == version


def test_api_server_outage_loses_nothing(cluster: Cluster, kube_namespace: str) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    eu = f"{op_ns}-eu"
    cluster.apply(
        secret("k", op_ns, "sk-1"),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        route("chat", ns, "chat", eu),
    )
    wait_for(lambda: outputs(cluster, ns), timeout=30, what="rendered")
    before = outputs(cluster, ns)
    cluster.plane.restart_apiserver()
    assert cluster.operator.alive
    # After the outage the operator still reacts to changes.
    cluster.apply(route("later", ns, "later", eu))
    wait_for(
        lambda: (o := outputs(cluster, ns)) and "later" in json.loads(o[0])["routes"],
        timeout=90,
        what="change after outage rendered",
    )
    after = outputs(cluster, ns)
    assert after is not None
    assert before is not None
    assert after[1] == before[1]
