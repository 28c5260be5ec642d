"""Data protection from a policy to the wire, on real parts: an AIPolicy's ``dataProtection``
selecting a namespace and the AIRoute's own → the operator's compiled ConfigMap → a sidecar
from those files → the simulated US provider receives placeholders while the EU one got the
originals, the client reads its own values back and the audit counts them."""

from __future__ import annotations

import json
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
PHONE = "+33 6 12 34 56 78"
PROMPT = f"Write to {EMAIL} or call {PHONE}"


def test_policy_rules_reach_the_sidecar_and_the_us_provider_gets_placeholders(
    cluster: Cluster, kube_namespace: str, eu_us: Any, start_sidecar: Any, tmp_path: Path
) -> None:
    eu, us = eu_us
    for sim in (eu, us):
        sim.configure(echo=True)
    op_ns = cluster.operator_namespace
    cluster.plane.kubectl("label", "namespace", kube_namespace, f"policy-test={op_ns}")
    # The route tightens the policy: phone numbers are redacted toward non-EU providers too.
    route_rules = {
        "rules": [
            {"categories": ["phone"], "action": "redact", "when": {"notJurisdictions": ["EU"]}}
        ]
    }
    _, p_us = eu_then_us(cluster, kube_namespace, eu.url, us.url, dataProtection=route_rules)
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
    assert {rule["source"] for rule in rules} == {
        f"AIPolicy {name}",
        f"AIRoute {kube_namespace}/chat",
    }

    # The route's status says which rules are in force (`kubectl get air -o wide`).
    def described() -> str | None:
        status = (cluster.get("airoute", "chat", kube_namespace) or {}).get("status") or {}
        text = status.get("dataProtection") or ""
        return text if "pseudonymise" in text else None

    in_force = wait_for(described, timeout=30, what="the rules in the route's status")
    assert "pseudonymise email (notJurisdictions [EU])" in in_force
    assert "redact phone (notJurisdictions [EU])" in in_force

    sidecar = start_sidecar(tmp_path)
    eu.set_faults([{"kind": "status", "status": 503}])  # fail over to the US provider
    client = openai.OpenAI(base_url=sidecar.url + "/v1", api_key="app-holds-no-key", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="chat", messages=[{"role": "user", "content": PROMPT}], stream=True
    ) as response:
        assert response.headers["x-aiguillage-provider"] == p_us
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )

    assert eu.requests[-1].body["messages"][0]["content"] == PROMPT
    assert us.requests[-1].body["messages"][0]["content"] == "Write to [EMAIL_1] or call [PHONE_1]"
    # The pseudonymised e-mail is put back; the redacted phone is not.
    assert text == f"You said: Write to {EMAIL} or call [PHONE_1]"

    def audited() -> dict[str, Any] | None:
        lines = (tmp_path / "audit.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines if '"dataProtection"' in line]
        return records[-1] if records else None

    record = wait_for(audited, timeout=10, what="the request's audit record")
    # No rule acts on phone numbers in the EU: only the e-mail is counted there.
    assert [a["dataProtection"] for a in record["attempts"]] == [
        {"email": {"audit": 1}},
        {"email": {"pseudonymise": 1}, "phone": {"redact": 1}},
    ]
    assert EMAIL not in (tmp_path / "audit.jsonl").read_text()
