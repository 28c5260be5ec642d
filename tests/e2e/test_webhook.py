"""The validating webhook on the real API server (TLS on loopback): what CEL cannot see."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.manifests import provider, route, secret

pytestmark = pytest.mark.e2e


def setup(cluster: Cluster, us_key_secret: str = "k") -> tuple[str, str]:
    """An EU and a US provider; the US one's key in Secret ``us_key_secret`` (which may not
    exist)."""
    op_ns = cluster.operator_namespace
    eu, us = f"{op_ns}-eu", f"{op_ns}-us"
    cluster.apply(
        secret("k", op_ns, "sk-test"),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        provider(us, "https://us.example/v1", "US", us_key_secret, op_ns),
    )
    return eu, us


def apply_error(cluster: Cluster, *docs: dict[str, object]) -> str:
    import yaml

    result = cluster.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    return result.stderr.strip()


def denied(message: str) -> str:
    return f'admission webhook "airoute.aiguillage.dev" denied the request: {message}'


# A missing Secret once was checked first and hid the residency breach behind it.
@pytest.mark.parametrize(
    "us_key_secret", ["k", "no-such-secret"], ids=["with-its-key", "while-its-key-is-missing"]
)
def test_target_outside_residency_is_refused(
    cluster_with_webhook: Cluster, kube_namespace: str, us_key_secret: str
) -> None:
    eu, us = setup(cluster_with_webhook, us_key_secret)
    doc = route("eu-only", kube_namespace, "eu-only", eu, us)
    doc["spec"]["residency"] = {"locations": ["EU"]}
    err = apply_error(cluster_with_webhook, doc)
    assert err.endswith(
        denied(
            f'spec.targets[1]: provider "{us}" is located in US, outside residency.locations [EU]'
        )
    )


def test_unknown_provider_and_model_are_refused(
    cluster_with_webhook: Cluster, kube_namespace: str
) -> None:
    eu, _ = setup(cluster_with_webhook)
    doc = route("r", kube_namespace, "r", "ghost", eu)
    doc["spec"]["targets"][1]["model"] = "large"
    err = apply_error(cluster_with_webhook, doc)
    assert err.endswith(
        denied(
            'spec.targets[0]: provider "ghost" does not exist; '
            f'spec.targets[1]: provider "{eu}" has no model "large" (it serves: small)'
        )
    )


def test_duplicate_model_name_in_namespace_is_refused(
    cluster_with_webhook: Cluster, kube_namespace: str
) -> None:
    eu, _ = setup(cluster_with_webhook)
    cluster_with_webhook.apply(route("first", kube_namespace, "chat", eu))
    err = apply_error(cluster_with_webhook, route("second", kube_namespace, "chat", eu))
    assert err.endswith(denied('spec.model: "chat" is already served by AIRoute first'))


def test_valid_route_is_admitted(cluster_with_webhook: Cluster, kube_namespace: str) -> None:
    eu, _ = setup(cluster_with_webhook)
    out = cluster_with_webhook.apply(route("ok", kube_namespace, "ok", eu))
    assert "airoute.aiguillage.dev/ok created" in out


def provider_denied(message: str) -> str:
    return f'admission webhook "aiprovider.aiguillage.dev" denied the request: {message}'


def test_a_provider_whose_endpoint_contradicts_its_location_is_refused(
    cluster_with_webhook: Cluster,
) -> None:
    op_ns = cluster_with_webhook.operator_namespace
    doc = provider(f"{op_ns}-paris", "https://bedrock-runtime.us-east-1.amazonaws.com", "FR",
                   "k", op_ns)  # fmt: skip
    doc["spec"].update(api="bedrock", auth={"none": {}})
    err = apply_error(cluster_with_webhook, doc)
    assert err.endswith(
        provider_denied(
            'spec.residency.location: "FR" contradicts where the endpoint processes data: its '
            "endpoint is in AWS region us-east-1, which is US"
        )
    )
    doc["spec"]["endpoint"] = "https://bedrock-runtime.eu-west-3.amazonaws.com"
    assert f"aiprovider.aiguillage.dev/{op_ns}-paris created" in cluster_with_webhook.apply(doc)


def test_options_the_sidecar_could_not_use_are_refused(cluster_with_webhook: Cluster) -> None:
    op_ns = cluster_with_webhook.operator_namespace
    doc = provider(f"{op_ns}-vertex", "https://europe-west4-aiplatform.googleapis.com", "NL",
                   "k", op_ns)  # fmt: skip
    doc["spec"].update(api="vertex-ai", options={"project": "p", "location": "us-central1"})
    err = apply_error(cluster_with_webhook, doc)
    assert err.endswith(
        provider_denied(
            'spec.options.location: "us-central1" does not match the endpoint\'s location '
            '"europe-west4"'
        )
    )


def test_a_provider_and_its_route_applied_together_are_admitted(
    cluster_with_webhook: Cluster, kube_namespace: str
) -> None:
    """The route reaches the webhook before the watch delivers its provider: the webhook asks
    the API server before calling the provider unknown (GitOps syncs apply both at once)."""
    op_ns = cluster_with_webhook.operator_namespace
    cluster_with_webhook.apply(secret("k", op_ns, "sk-test"))
    for i in range(5):
        name = f"{op_ns}-new{i}"
        out = cluster_with_webhook.apply(
            provider(name, "https://eu.example/v1", "FR", "k", op_ns),
            route(f"r{i}", kube_namespace, f"m{i}", name),
        )
        assert f"airoute.aiguillage.dev/r{i} created" in out
