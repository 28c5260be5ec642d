"""Two operator replicas with ``--leader-elect`` on the real API server: one writes, both
admit, and the standby takes over when the leader goes away."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiguillage.devtools import processes
from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import (
    Cluster,
    delete_webhook_configurations,
    free_port,
    running_cluster,
    start_operator,
)
from tests.e2e.manifests import provider, route, secret, serve_one_route

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair(crds: ControlPlane, tmp_path: Path) -> Iterator[tuple[Cluster, processes.Child]]:
    """The fixture's operator (started first, so it leads) and a second replica."""
    with running_cluster(crds, tmp_path, "--leader-elect") as first:
        wait_for(lambda: "leading" in first.operator.output(), timeout=30, what="a leader")
        second = start_operator(
            crds, first.operator_namespace, tmp_path / "second.log", "--leader-elect"
        )
        try:
            yield first, second
        finally:
            second.stop()


def lease_holder(cluster: Cluster) -> str:
    lease = cluster.get("lease", "aiguillage-operator", cluster.operator_namespace) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def routes_served(cluster: Cluster, ns: str) -> set[str]:
    cm = cluster.get("configmap", "aiguillage-config", ns)
    return set(json.loads(cm["data"]["config.json"])["routes"]) if cm else set()


def test_only_the_leader_writes_and_the_standby_takes_over_when_it_is_killed(
    pair: tuple[Cluster, processes.Child], kube_namespace: str
) -> None:
    cluster, standby = pair
    ns = kube_namespace
    assert lease_holder(cluster)
    eu = serve_one_route(cluster, ns, name="a")
    wait_for(lambda: routes_served(cluster, ns) == {"a"}, timeout=30, what="route a served")
    assert "wrote config" in cluster.operator.output()
    assert "wrote config" not in standby.output()
    assert "leading" not in standby.output()

    cluster.operator.kill()  # a crash: the Lease is not released, it must expire
    killed_at = time.monotonic()
    cluster.apply(route("b", ns, "b", eu))

    wait_for(lambda: routes_served(cluster, ns) == {"a", "b"}, timeout=60, what="the takeover")
    took = time.monotonic() - killed_at
    assert "leading" in standby.output()
    assert "wrote config" in standby.output()
    assert took >= 10, f"took over after {took:.1f}s, before the lease could expire"


def test_a_leader_stopping_cleanly_hands_over_at_once(
    pair: tuple[Cluster, processes.Child], kube_namespace: str
) -> None:
    cluster, standby = pair
    ns = kube_namespace
    eu = serve_one_route(cluster, ns, name="a")
    wait_for(lambda: routes_served(cluster, ns) == {"a"}, timeout=30, what="route a served")
    before = lease_holder(cluster)

    cluster.operator.stop()  # SIGTERM: the leader releases its Lease

    assert "released the lease" in cluster.operator.output()
    wait_for(lambda: "leading" in standby.output(), timeout=15, what="the standby to lead")
    assert lease_holder(cluster) not in ("", before)
    cluster.apply(route("c", ns, "c", eu))
    wait_for(lambda: routes_served(cluster, ns) == {"a", "c"}, timeout=30, what="route c served")


def test_the_standby_admits_against_what_it_watches(
    crds: ControlPlane, tmp_path: Path, kube_namespace: str
) -> None:
    """kopf's peering would pause a standby's watches; ours keep the standby's inventory
    current, so its webhook judges new routes against providers created after it started."""
    with running_cluster(crds, tmp_path, "--leader-elect") as cluster:
        wait_for(lambda: "leading" in cluster.operator.output(), timeout=30, what="a leader")
        listen = f"127.0.0.1:{free_port()}"
        standby = start_operator(
            crds, cluster.operator_namespace, tmp_path / "standby.log",
            "--leader-elect", "--webhook-listen", listen,
        )  # fmt: skip
        try:
            wait_for(
                lambda: cluster.get("validatingwebhookconfiguration", "aiguillage.dev"),
                timeout=30,
                what="the standby's webhook configuration",
            )
            op_ns = cluster.operator_namespace
            eu = f"{op_ns}-late"
            cluster.apply(
                secret("k", op_ns, "sk-1"),
                provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
            )
            ns = kube_namespace
            # The standby saw the provider arrive: the route is admitted once it has.
            wait_for(
                lambda: (
                    crds.kubectl(
                        "apply", "-f", "-", input=json.dumps(route("r", ns, "r", eu)), check=False
                    ).returncode
                    == 0
                ),
                timeout=30,
                what="the route to be admitted by the standby",
            )
            refused = crds.kubectl(
                "apply", "-f", "-", input=json.dumps(route("g", ns, "g", "ghost")), check=False
            )
            assert 'provider "ghost" does not exist' in refused.stderr
            assert "leading" not in standby.output()
        finally:
            standby.stop()
            delete_webhook_configurations(crds)
