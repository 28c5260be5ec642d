"""A budget end to end on real parts: an AIPolicy applied with kubectl, the operator's
config and Secret, a sidecar counting in a real redis-server, a 429 naming the policy and
the calling workload, and the spend it counted in ``kubectl get air``."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from aiguillage.devtools.redis_server import RedisServer
from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import provider, route, secret
from tests.e2e.test_policy import budget_in_store

pytestmark = pytest.mark.e2e

# One euro per thousand tokens: a request costs about 0.01 EUR.
PRICING = {"inputPerMillion": "1000", "outputPerMillion": "1000"}


def test_a_policy_budget_refuses_at_the_sidecar_and_its_spend_shows_in_kubectl(
    spend_cluster: Cluster,
    kube_namespace: str,
    eu_us: Any,
    start_sidecar: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, ns = spend_cluster, kube_namespace
    sim, _ = eu_us
    op_ns = cluster.operator_namespace
    eu = provider(f"{op_ns}-eu", sim.url + "/v1", "FR", "eu-key", op_ns)
    eu["spec"]["models"][0]["pricing"] = PRICING
    cluster.apply(secret("eu-key", op_ns, "sk-eu-test"), eu)
    cluster.plane.kubectl("label", "namespace", ns, f"policy-test={op_ns}")
    with RedisServer(password="s3cret") as server:
        policy = budget_in_store(cluster, server, "0.2")
        cluster.apply(route("chat", ns, "chat", eu["metadata"]["name"]))

        def served() -> bool:
            config = cluster.get("configmap", "aiguillage-config", ns) or {}
            creds = (cluster.get("secret", "aiguillage-credentials", ns) or {}).get("data", {})
            return '"limits"' in str(config) and base64.b64decode(
                creds.get("shared_store", "")
            ) == (b"s3cret")

        wait_for(served, timeout=30, what="the budget and the store password compiled")
        config = cluster.rendered(ns, tmp_path)
        assert config["routes"]["chat"]["limits"][0]["budgetEurPerMonth"] == "0.2"
        # The pod's identity, as the injection passes it through the downward API.
        monkeypatch.setenv("POD_NAMESPACE", ns)
        monkeypatch.setenv("POD_NAME", "chat-app-0")
        monkeypatch.setenv("POD_SERVICE_ACCOUNT", "chat-app")
        sidecar = start_sidecar(tmp_path)
        client = openai.OpenAI(base_url=sidecar.url + "/v1", api_key="unused", max_retries=0)
        answered, refused = until_refused(client)
        assert answered > 0
        name = policy["metadata"]["name"]
        message = str(refused)
        scope = f"route chat of namespace {ns}"
        assert f"monthly budget of 0.20 EUR of AIPolicy {name} for {scope}" in message
        assert f"caller: service account chat-app of namespace {ns}, pod chat-app-0" in message

        billed = Decimal(sum(sum(tokens) for tokens in sim.billed.values())) / 1000
        assert billed <= Decimal("0.2")
        percent = int(billed * 100 / Decimal("0.2"))

        def spend_column() -> str:
            table = cluster.plane.kubectl("get", "air", "chat", "-n", ns).stdout.splitlines()
            return table[1]

        wait_for(
            lambda: f"{billed:.2f} EUR ({percent}% of 0.2)" in spend_column(),
            timeout=30,
            what=f"SPEND {billed:.2f} EUR ({percent}% of 0.2)",
        )


def until_refused(client: openai.OpenAI) -> tuple[int, openai.RateLimitError]:
    """Chat until refused: the number of answers, and the refusal."""
    for answered in range(100):
        try:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Bonjour"}], max_tokens=20
            )
        except openai.RateLimitError as exc:
            return answered, exc
    raise AssertionError("never refused")
