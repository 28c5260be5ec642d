"""The operator watches provider keys in its own namespace only, and keeps watching across an
API server restart (``operator/secretwatch.py``)."""

from __future__ import annotations

import base64

import pytest

from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster
from tests.e2e.manifests import route, secret, serve_one_route

pytestmark = pytest.mark.e2e


def rendered_key(cluster: Cluster, ns: str, provider_name: str) -> str | None:
    s = cluster.get("secret", "aiguillage-credentials", ns)
    data = (s or {}).get("data") or {}
    return base64.b64decode(data[provider_name]).decode() if provider_name in data else None


@pytest.fixture
def served(cluster: Cluster, kube_namespace: str) -> str:
    """One route in the test's namespace on an EU provider whose key ``sk-1`` has been
    rendered there; the provider's name."""
    eu = serve_one_route(cluster, kube_namespace)
    wait_for(
        lambda: rendered_key(cluster, kube_namespace, eu) == "sk-1", timeout=30, what="first key"
    )
    return eu


def test_a_rotation_after_an_api_server_restart_still_arrives(
    cluster: Cluster, kube_namespace: str, served: str
) -> None:
    ns, eu = kube_namespace, served
    cluster.plane.restart_apiserver()
    cluster.apply(secret("k", cluster.operator_namespace, "sk-2"))

    wait_for(lambda: rendered_key(cluster, ns, eu) == "sk-2", timeout=60, what="rotated key")


def test_a_secret_of_the_same_name_elsewhere_is_not_a_provider_key(
    cluster: Cluster, kube_namespace: str, served: str
) -> None:
    ns, eu = kube_namespace, served

    cluster.apply(secret("k", ns, "sk-from-an-app-namespace"))
    cluster.apply(route("other", ns, "other", eu))  # a later render, to be sure it ran
    wait_for(
        lambda: (
            "other"
            in (cluster.get("configmap", "aiguillage-config", ns) or {})
            .get("data", {})
            .get("config.json", "")
        ),
        timeout=30,
        what="the second route rendered",
    )

    assert rendered_key(cluster, ns, eu) == "sk-1"
