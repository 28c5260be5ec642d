"""The whole path on real parts: kubectl apply → operator → ConfigMap/Secret → sidecar →
simulated providers, with the official openai SDK as the client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import eu_then_us, is_ready, provider, route, secret

pytestmark = pytest.mark.e2e


def test_apply_render_serve_and_fail_over(
    cluster: Cluster, kube_namespace: str, eu_us: Any, start_sidecar: Any, tmp_path: Path
) -> None:
    eu, us = eu_us
    p_eu, p_us = eu_then_us(cluster, kube_namespace, eu.url, us.url)
    wait_for(lambda: is_ready(cluster, "chat", kube_namespace), timeout=30, what="route Ready")
    config = cluster.rendered(kube_namespace, tmp_path)
    assert config["routes"]["chat"]["targets"][0]["provider"] == p_eu
    # The ConfigMap names credentials by file; no key is ever in it.
    assert "sk-eu-test" not in str(config)
    route_obj = cluster.get("airoute", "chat", kube_namespace)
    assert route_obj is not None
    assert route_obj["status"]["observedGeneration"] == route_obj["metadata"]["generation"]
    assert route_obj["status"]["configHash"] == config["hash"]

    sidecar = start_sidecar(tmp_path)
    client = openai.OpenAI(base_url=sidecar.url + "/v1", api_key="app-holds-no-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Bonjour"}]
    )
    assert raw.headers["x-aiguillage-provider"] == p_eu
    assert raw.headers["x-aiguillage-attempts"] == "1"
    assert "sim-eu" in (raw.parse().choices[0].message.content or "")
    assert eu.requests[-1].headers["authorization"] == "Bearer sk-eu-test"

    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Bonjour"}]
    )
    assert raw.headers["x-aiguillage-provider"] == p_us
    assert raw.headers["x-aiguillage-attempts"] == "2"
    assert "sim-us" in (raw.parse().choices[0].message.content or "")


def test_route_with_missing_provider_is_reported_and_loses_nothing(
    cluster: Cluster, kube_namespace: str, eu_us: Any, tmp_path: Path
) -> None:
    eu, _ = eu_us
    op_ns = cluster.operator_namespace
    p_eu = f"{op_ns}-eu"
    cluster.apply(
        secret("eu-key", op_ns, "sk-eu-test"),
        provider(p_eu, eu.url + "/v1", "FR", "eu-key", op_ns),
        route("good", kube_namespace, "good", p_eu),
    )
    wait_for(lambda: is_ready(cluster, "good", kube_namespace), timeout=30, what="route Ready")
    cluster.apply(route("broken", kube_namespace, "broken", "does-not-exist"))
    ready = wait_for(
        lambda: cluster.condition("airoute", "broken", kube_namespace, "Ready") or None,
        timeout=30,
        what="broken route status",
    )
    assert ready["status"] == "False"
    refs = cluster.condition("airoute", "broken", kube_namespace, "ResolvedRefs")
    assert refs["status"] == "False"
    assert refs["reason"] == "ProviderNotFound"
    assert refs["message"] == 'spec.targets[0]: provider "does-not-exist" does not exist'
    config = cluster.rendered(kube_namespace, tmp_path)
    assert set(config["routes"]) == {"good"}
    assert cluster.condition("airoute", "good", kube_namespace, "Ready")["status"] == "True"
