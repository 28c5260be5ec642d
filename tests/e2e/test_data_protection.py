"""Data protection from a policy to the wire, on real parts: an AIPolicy's ``dataProtection``
selecting a namespace → the operator's compiled ConfigMap → a sidecar from those files → the
simulated US provider receives placeholders while the EU one got the originals, and the
client reads its own values back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import API, eu_then_us
from tests.e2e.test_policy import applied

pytestmark = pytest.mark.e2e

EMAIL = "claire.martin@example.fr"


def test_policy_rules_reach_the_sidecar_and_the_us_provider_gets_placeholders(
    cluster: Cluster, kube_namespace: str, eu_us: Any, start_sidecar: Any, tmp_path: Path
) -> None:
    eu, us = eu_us
    for sim in (eu, us):
        sim.configure(echo=True)
    op_ns = cluster.operator_namespace
    cluster.plane.kubectl("label", "namespace", kube_namespace, f"policy-test={op_ns}")
    _, p_us = eu_then_us(cluster, kube_namespace, eu.url, us.url)
    name = f"{op_ns}-gdpr"
    applied(
        cluster,
        {
            "apiVersion": API,
            "kind": "AIPolicy",
            "metadata": {"name": name, "labels": {"test": op_ns}},
            "spec": {
                "namespaceSelector": {"matchLabels": {"policy-test": op_ns}},
                "mode": "Enforce",
                "dataProtection": {
                    "rules": [
                        {"categories": ["email"], "action": "audit"},
                        {
                            "categories": ["email"],
                            "action": "pseudonymise",
                            "when": {"notJurisdictions": ["EU"]},
                        },
                    ]
                },
            },
        },
    )

    def compiled() -> dict[str, Any] | None:
        cm = cluster.get("configmap", "aiguillage-config", kube_namespace)
        config = cluster.rendered(kube_namespace, tmp_path) if cm else None
        chat = (config or {}).get("routes", {}).get("chat") or {}
        return config if chat.get("dataProtection") else None

    config = wait_for(compiled, timeout=30, what="the policy's rules in the compiled config")
    rules = config["routes"]["chat"]["dataProtection"]["rules"]
    assert {rule["source"] for rule in rules} == {f"AIPolicy {name}"}

    sidecar = start_sidecar(tmp_path)
    eu.set_faults([{"kind": "status", "status": 503}])  # fail over to the US provider
    client = openai.OpenAI(base_url=sidecar.url + "/v1", api_key="app-holds-no-key", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="chat", messages=[{"role": "user", "content": f"Write to {EMAIL}"}], stream=True
    ) as response:
        assert response.headers["x-aiguillage-provider"] == p_us
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )

    assert eu.requests[-1].body["messages"][0]["content"] == f"Write to {EMAIL}"
    assert us.requests[-1].body["messages"][0]["content"] == "Write to [EMAIL_1]"
    assert text == f"You said: Write to {EMAIL}"
