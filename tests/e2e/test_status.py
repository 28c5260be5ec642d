"""Status tells the truth through a route's life, and Secrets reach the rendered Secret."""

from __future__ import annotations

import base64
import json
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


def provider_conditions(cluster: Cluster, name: str) -> dict[str, tuple[str, str, str]]:
    obj = cluster.get("aiprovider", name) or {}
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in (obj.get("status") or {}).get("conditions") or []
    }


def test_bad_providers_take_only_themselves_out(cluster: Cluster, kube_namespace: str) -> None:
    """Without the webhook (it is down, or off), what got in is reported and never served."""
    op_ns, ns = cluster.operator_namespace, kube_namespace
    good, vertex, crlf, aws = (f"{op_ns}-{n}" for n in ("good", "vertex", "crlf", "aws"))
    bad_options = provider(vertex, "https://europe-west4-aiplatform.googleapis.com", "NL", "k",
                           op_ns)  # fmt: skip
    bad_options["spec"].update(api="vertex-ai", options={"project": "p", "location": "us-east1"})
    contradicted = provider(aws, "https://bedrock-runtime.us-east-1.amazonaws.com", "FR", "k",
                            op_ns)  # fmt: skip
    contradicted["spec"].update(api="bedrock", auth={"none": {}})
    doc: dict[str, Any] = route("chat", ns, "chat", vertex, crlf, aws, good)
    doc["spec"]["residency"] = {"locations": ["EU"]}
    cluster.apply(
        secret("k", op_ns, "sk-good"),
        secret("k-crlf", op_ns, "sk-1\r\nX-Injected: 1"),
        provider(good, "https://eu.example/v1", "FR", "k", op_ns),
        bad_options,
        provider(crlf, "https://eu2.example/v1", "FR", "k-crlf", op_ns),
        contradicted,
        doc,
    )

    wait_conditions(
        cluster,
        "chat",
        ns,
        ResolvedRefs=("False", "ProviderInvalid"),
        Ready=("False", "TargetsExcluded"),
    )
    wait_for(lambda: served_routes(cluster, ns) == {"chat"}, timeout=30, what="chat served")
    cm = cluster.get("configmap", "aiguillage-config", ns) or {}
    compiled = json.loads(cm["data"]["config.json"])
    assert [t["provider"] for t in compiled["routes"]["chat"]["targets"]] == [good]
    assert set(compiled["providers"]) == {good}
    rendered_secret = cluster.get("secret", "aiguillage-credentials", ns) or {}
    assert set(rendered_secret.get("data") or {}) == {good}
    message = cluster.condition("airoute", "chat", ns, "ResolvedRefs")["message"]
    assert message == (
        f'spec.targets[0]: provider "{vertex}" is not usable: spec.options.location: '
        '"us-east1" does not match the endpoint\'s location "europe-west4"; '
        f'spec.targets[1]: provider "{crlf}": Secret {op_ns}/k-crlf key "apiKey" contains a '
        "control character (CR) at offset 4"
    )
    residency = cluster.condition("airoute", "chat", ns, "ResidencyCompliant")["message"]
    assert residency == (
        f'spec.targets[2]: provider "{aws}" is located in US, outside residency.locations [EU] '
        "(its endpoint is in AWS region us-east-1)"
    )

    wait_for(lambda: provider_conditions(cluster, aws).get("Ready"), timeout=30, what="status")
    assert provider_conditions(cluster, vertex)["Accepted"][:2] == ("False", "InvalidOptions")
    assert provider_conditions(cluster, crlf)["CredentialsResolved"][:2] == (
        "False",
        "InvalidCredential",
    )
    assert provider_conditions(cluster, aws)["ResidencyConsistent"][:2] == (
        "False",
        "LocationContradicted",
    )
    assert provider_conditions(cluster, good)["Ready"][:2] == ("True", "Ready")
    assert "sk-1" not in json.dumps(cluster.get("aiprovider", crlf))


def test_a_burst_of_provider_creations(cluster: Cluster, kube_namespace: str) -> None:
    op_ns, ns = cluster.operator_namespace, kube_namespace
    names = [f"{op_ns}-burst-{i:02d}" for i in range(50)]
    cluster.apply(
        secret("k", op_ns, "sk-burst"),
        route("burst", ns, "burst", *names[:40]),
        *(provider(n, f"https://{n}.example/v1", "FR", "k", op_ns) for n in names),
    )

    def all_ready() -> bool:
        listed = cluster.plane.kubectl("get", "aiproviders", "-l", f"test={op_ns}", "-o", "json")
        items = json.loads(listed.stdout)["items"]
        ready = [
            i for i in items
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (i.get("status") or {}).get("conditions") or [])
        ]  # fmt: skip
        return len(ready) == 50

    wait_for(all_ready, timeout=60, what="50 providers ready")
    wait_conditions(cluster, "burst", ns, Ready=("True", "Serving"))
    log = cluster.operator.output()
    assert "dictionary changed size" not in log
    assert "failed; will retry" not in log
