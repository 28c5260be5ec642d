"""AIPolicy on the real API server: the webhook refuses what an Enforce-mode policy forbids,
an existing route loses the forbidden target from its compiled config with its status saying
why, and Audit mode refuses nothing while the compiled config carries the finding; spend
counted in a real redis-server shows in ``kubectl get air``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import yaml

from aiguillage.devtools.redis_server import RedisServer
from aiguillage.devtools.waiting import wait_for
from aiguillage.sidecar.config import LimitScope
from aiguillage.sidecar.limits import keys
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import API, route, secret
from tests.e2e.test_webhook import setup as providers

pytestmark = pytest.mark.e2e


def setup(cluster: Cluster, namespace: str) -> tuple[str, str]:
    """An EU and a US provider, and ``namespace`` labelled for this test's policies only."""
    eu, us = providers(cluster)
    cluster.plane.kubectl(
        "label", "namespace", namespace, f"policy-test={cluster.operator_namespace}"
    )
    return eu, us


def eu_only(cluster: Cluster, mode: str = "Enforce") -> dict[str, Any]:
    op_ns = cluster.operator_namespace
    return {
        "apiVersion": API,
        "kind": "AIPolicy",
        "metadata": {"name": f"{op_ns}-eu-only", "labels": {"test": op_ns}},
        "spec": {
            "namespaceSelector": {"matchLabels": {"policy-test": op_ns}},
            "mode": mode,
            "residency": {"locations": ["EU"]},
            "limits": [{"per": "namespace", "budgetEurPerMonth": "100"}],
        },
    }


def applied(cluster: Cluster, policy: dict[str, Any]) -> None:
    """Apply ``policy`` and wait until the operator reports it applied to one namespace."""
    cluster.apply(policy)
    name = policy["metadata"]["name"]

    def ready() -> bool:
        obj = cluster.get("aipolicy", name) or {}
        status = obj.get("status") or {}
        return (
            status.get("observedGeneration") == obj["metadata"].get("generation")
            and status.get("selectedNamespaces") == 1
            and cluster.condition("aipolicy", name, None, "Ready").get("status") == "True"
        )

    wait_for(ready, timeout=30, what=f"AIPolicy {name} applied")


def compiled_targets(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    cm = cluster.get("configmap", "aiguillage-config", namespace)
    if cm is None:
        return []
    routes = json.loads(cm["data"]["config.json"])["routes"]
    return list(routes["chat"]["targets"]) if "chat" in routes else []


def providers_of(cluster: Cluster, namespace: str) -> list[str]:
    return [t["provider"] for t in compiled_targets(cluster, namespace)]


def test_the_webhook_refuses_a_route_to_a_us_provider_naming_the_policy(
    cluster_with_webhook: Cluster, kube_namespace: str
) -> None:
    cluster = cluster_with_webhook
    eu, us = setup(cluster, kube_namespace)
    policy = eu_only(cluster)
    applied(cluster, policy)
    doc = route("chat", kube_namespace, "chat", eu, us)
    result = cluster.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert result.returncode != 0, result.stdout
    name = policy["metadata"]["name"]
    assert result.stderr.strip().endswith(
        'admission webhook "airoute.aiguillage.dev" denied the request: spec.targets[1]: '
        f'provider "{us}" is located in US, outside AIPolicy {name} residency.locations [EU]'
    )
    # The same route without the US target is admitted.
    assert "created" in cluster.apply(route("chat", kube_namespace, "chat", eu))


def test_a_new_policy_removes_the_us_target_from_an_existing_route(
    cluster: Cluster, kube_namespace: str
) -> None:
    ns = kube_namespace
    eu, us = setup(cluster, ns)
    cluster.apply(route("chat", ns, "chat", eu, us))
    wait_for(lambda: providers_of(cluster, ns) == [eu, us], timeout=30, what="both targets")

    policy = eu_only(cluster)
    name = policy["metadata"]["name"]
    applied(cluster, policy)
    wait_for(lambda: providers_of(cluster, ns) == [eu], timeout=30, what="the US target removed")
    cond = cluster.condition("airoute", "chat", ns, "PolicyCompliant")
    assert (cond["status"], cond["reason"]) == ("False", "ForbiddenByPolicy")
    assert cond["message"] == (
        f'spec.targets[1]: provider "{us}" is located in US, outside AIPolicy {name} '
        "residency.locations [EU]"
    )
    ready = cluster.condition("airoute", "chat", ns, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TargetsExcluded")
    status = (cluster.get("airoute", "chat", ns) or {})["status"]
    assert status["policies"] == [name]
    assert status["limits"] == "100 EUR/month per namespace"

    def event_posted() -> bool:
        out = cluster.plane.kubectl(
            "get", "events", "-n", ns, "--field-selector", "involvedObject.name=chat", "-o",
            "json",
        ).stdout  # fmt: skip
        return any(e["reason"] == "ForbiddenByPolicy" for e in json.loads(out)["items"])

    wait_for(event_posted, timeout=30, what="a ForbiddenByPolicy event")

    # kubectl get shows what the policy selects and enforces.
    table = cluster.plane.kubectl("get", "aipolicy", name).stdout.splitlines()
    assert table[0].split() == [
        "NAME", "SELECTOR", "MODE", "RESIDENCY", "LIMITS", "NAMESPACES", "READY", "AGE"
    ]  # fmt: skip
    assert f"policy-test={cluster.operator_namespace}   Enforce   locations [EU]" in table[1]
    assert "100 EUR/month per namespace   1            True" in table[1]

    # The namespace loses the label the policy selects: the target comes back.
    cluster.plane.kubectl("label", "namespace", ns, "policy-test-")
    wait_for(lambda: providers_of(cluster, ns) == [eu, us], timeout=30, what="the US target back")
    wait_for(
        lambda: cluster.condition("airoute", "chat", ns, "PolicyCompliant").get("status") == "True",
        timeout=30,
        what="PolicyCompliant=True",
    )


def test_audit_mode_refuses_nothing_and_the_config_carries_the_finding(
    cluster_with_webhook: Cluster, kube_namespace: str
) -> None:
    cluster = cluster_with_webhook
    ns = kube_namespace
    eu, us = setup(cluster, ns)
    policy = eu_only(cluster, mode="Audit")
    name = policy["metadata"]["name"]
    applied(cluster, policy)
    doc = route("chat", ns, "chat", eu, us)
    result = cluster.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    assert "airoute.aiguillage.dev/chat created" in result.stdout
    reason = f'provider "{us}" is located in US, outside AIPolicy {name} residency.locations [EU]'
    assert f"Warning: spec.targets[1]: {reason} (AIPolicy {name} is in Audit mode" in result.stderr

    wait_for(lambda: providers_of(cluster, ns) == [eu, us], timeout=30, what="both targets")
    targets = compiled_targets(cluster, ns)
    assert targets[0]["policyAudit"] == []
    assert targets[1]["policyAudit"] == [{"policy": name, "reason": reason}]
    config = json.loads(
        (cluster.get("configmap", "aiguillage-config", ns) or {})["data"]["config.json"]
    )
    assert config["routes"]["chat"]["limits"][0]["mode"] == "Audit"
    cond = cluster.condition("airoute", "chat", ns, "PolicyCompliant")
    assert (cond["status"], cond["reason"]) == ("False", "AuditFindings")
    assert cluster.condition("airoute", "chat", ns, "Ready")["status"] == "True"


def budget_in_store(cluster: Cluster, server: RedisServer, budget: str) -> dict[str, Any]:
    """Apply the EU-only policy with a route budget counted in ``server`` (password
    ``s3cret``, in Secret ``redis`` of the operator's namespace); the policy applied."""
    policy = eu_only(cluster)
    policy["spec"]["limits"] = [{"per": "route", "budgetEurPerMonth": budget}]
    policy["spec"]["sharedStore"] = {
        "url": server.url,
        "passwordSecretRef": {"name": "redis", "key": "password"},
    }
    redis_secret = secret("redis", cluster.operator_namespace, "s3cret")
    redis_secret["stringData"] = {"password": "s3cret"}
    cluster.apply(redis_secret)
    applied(cluster, policy)
    return policy


def test_spend_from_the_shared_store_shows_in_kubectl_get_air(
    spend_cluster: Cluster, kube_namespace: str
) -> None:
    cluster, ns = spend_cluster, kube_namespace
    eu, _ = setup(cluster, ns)
    with RedisServer(password="s3cret") as server:
        budget_in_store(cluster, server, "10")
        cluster.apply(route("chat", ns, "chat", eu))
        wait_for(lambda: providers_of(cluster, ns) == [eu], timeout=30, what="the route served")
        creds = cluster.get("secret", "aiguillage-credentials", ns) or {}
        assert base64.b64decode(creds["data"]["shared_store"]) == b"s3cret"

        # What the sidecars would have counted this month, by the keys module they use.
        month = keys.month(datetime.now(UTC), ZoneInfo("Europe/Paris"))
        client = redis.Redis.from_url(server.url, password="s3cret")
        for scope, ident in (("route", f"{ns}/chat"), ("namespace", ns)):
            name = keys.budget_key("aiguillage", LimitScope(scope), ident, month)
            client.hset(name, keys.SPENT, keys.to_nano(Decimal("2.5")))
        client.close()

        def spend_column() -> str:
            table = cluster.plane.kubectl("get", "air", "chat", "-n", ns).stdout.splitlines()
            header = table[0].split()
            assert header[5] == "SPEND", header
            return table[1]

        wait_for(lambda: "2.50 EUR (25% of 10)" in spend_column(), timeout=30, what="SPEND")
        status = (cluster.get("airoute", "chat", ns) or {})["status"]["spend"]
        assert status["route"] == {
            "monthToDateEur": "2.5000", "budgetEur": "10", "budgetUsedPercent": 25
        }  # fmt: skip
        assert status["aggregated"] is True
