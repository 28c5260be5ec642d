"""Status tells the truth through a route's life, and Secrets reach the rendered Secret."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import provider, route, secret

pytestmark = pytest.mark.e2e


def conditions(cluster: Cluster, name: str, ns: str) -> dict[str, tuple[str, str]]:
    obj = cluster.get("airoute", name, ns) or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj.get("metadata", {}).get("generation"):
        return {}
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def wait_conditions(cluster: Cluster, name: str, ns: str, **want: tuple[str, str]) -> None:
    def matches() -> bool:
        got = conditions(cluster, name, ns)
        return all(got.get(k) == v for k, v in want.items())

    wait_for(matches, timeout=30, what=f"conditions {want} (last: {conditions(cluster, name, ns)})")


def served_routes(cluster: Cluster, ns: str) -> set[str] | None:
    import json

    cm = cluster.get("configmap", "aiguillage-config", ns)
    return None if cm is None else set(json.loads(cm["data"]["config.json"])["routes"])


def test_route_life(cluster: Cluster, kube_namespace: str) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    eu = f"{op_ns}-eu"
    doc: dict[str, Any] = route("chat", ns, "chat", eu)
    doc["spec"]["residency"] = {"locations": ["EU"]}

    # created before its provider exists
    cluster.apply(doc)
    wait_conditions(
        cluster,
        "chat",
        ns,
        ResolvedRefs=("False", "ProviderNotFound"),
        Ready=("False", "NotServed"),
    )
    # provider added (its Secret too)
    cluster.apply(
        secret("k", op_ns, "sk-1"), provider(eu, "https://eu.example/v1", "FR", "k", op_ns)
    )
    wait_conditions(
        cluster,
        "chat",
        ns,
        ResolvedRefs=("True", "Resolved"),
        ResidencyCompliant=("True", "Compliant"),
        Ready=("True", "Serving"),
    )
    assert served_routes(cluster, ns) == {"chat"}
    assert (cluster.get("airoute", "chat", ns) or {})["status"]["targets"] == "1/1"
    # residency broken: the provider moves to the US
    cluster.apply(provider(eu, "https://eu.example/v1", "US", "k", op_ns))
    wait_conditions(
        cluster,
        "chat",
        ns,
        ResidencyCompliant=("False", "OutsideResidency"),
        Ready=("False", "NotServed"),
    )
    wait_for(lambda: served_routes(cluster, ns) == set(), timeout=30, what="route unserved")
    # fixed
    cluster.apply(provider(eu, "https://eu.example/v1", "DE", "k", op_ns))
    wait_conditions(cluster, "chat", ns, Ready=("True", "Serving"))
    wait_for(lambda: served_routes(cluster, ns) == {"chat"}, timeout=30, what="route served")
    events = cluster.plane.kubectl(
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.name=chat",
        "-o",
        "custom-columns=TYPE:.type,REASON:.reason",
        "--no-headers",
    ).stdout.split("\n")
    reasons = [" ".join(line.split()) for line in events if line.strip()]
    assert "Normal Serving" in reasons
    assert "Warning NotServed" in reasons
    # deleted: the namespace's outputs go with its last route
    cluster.plane.kubectl("delete", "airoute", "chat", "-n", ns)
    wait_for(lambda: served_routes(cluster, ns) is None, timeout=30, what="config removed")
    assert cluster.get("secret", "aiguillage-credentials", ns) is None


def test_secret_rotation_reaches_the_rendered_secret(cluster: Cluster, kube_namespace: str) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    eu = f"{op_ns}-eu"
    cluster.apply(
        secret("k", op_ns, "sk-old"),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        route("chat", ns, "chat", eu),
    )

    def rendered_key() -> str | None:
        s = cluster.get("secret", "aiguillage-credentials", ns)
        data = (s or {}).get("data") or {}
        return base64.b64decode(data[eu]).decode() if eu in data else None

    wait_for(lambda: rendered_key() == "sk-old", timeout=30, what="first key")
    cluster.apply(secret("k", op_ns, "sk-new"))
    wait_for(lambda: rendered_key() == "sk-new", timeout=10, what="rotated key")
    cluster.plane.kubectl("delete", "secret", "k", "-n", op_ns)
    wait_conditions(cluster, "chat", ns, ResolvedRefs=("False", "SecretNotFound"))
    wait_for(lambda: rendered_key() is None, timeout=10, what="key removed")
    provider_ready = cluster.get("aiprovider", eu) or {}
    creds = {c["type"]: c for c in provider_ready["status"]["conditions"]}
    assert creds["CredentialsResolved"]["status"] == "False"
    assert creds["CredentialsResolved"]["message"] == f"Secret {op_ns}/k does not exist"
    assert provider_ready["status"]["usedBy"] == [f"{ns}/chat"]
