"""Manifests the e2e tests apply, built in code so each test names its own objects."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Cluster

API = "aiguillage.dev/v1alpha1"


def provider(name: str, endpoint: str, location: str, secret: str, test: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIProvider",
        "metadata": {"name": name, "labels": {"test": test}},
        "spec": {
            "api": "openai",
            "endpoint": endpoint,
            "residency": {"location": location, "jurisdiction": location},
            "auth": {"apiKey": {"secretRef": {"name": secret, "key": "apiKey"}}},
            "models": [
                {"name": "small", "pricing": {"inputPerMillion": "0.1", "outputPerMillion": "0.3"}}
            ],
        },
    }


def secret(name: str, namespace: str, key: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"apiKey": key}}


def is_ready(cluster: Cluster, route: str, namespace: str) -> bool:
    return cluster.condition("airoute", route, namespace, "Ready").get("status") == "True"


def route(name: str, namespace: str, model: str, *providers: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AIRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": model,
            "targets": [
                {"provider": p, "model": "small", "priority": i} for i, p in enumerate(providers)
            ],
            "timeouts": {"connect": "2s", "firstToken": "5s"},
        },
    }


def eu_then_us(
    cluster: Cluster, namespace: str, eu_url: str, us_url: str, **route_spec: Any
) -> tuple[str, str]:
    """Providers for the simulated EU (FR) and US providers at ``eu_url`` and ``us_url`` (keys
    ``sk-eu-test`` and ``sk-us-test``) and route ``chat`` in ``namespace``, EU first, with
    ``route_spec`` added to its spec; returns the providers' names."""
    op_ns = cluster.operator_namespace
    p_eu, p_us = f"{op_ns}-eu", f"{op_ns}-us"
    chat = route("chat", namespace, "chat", p_eu, p_us)
    chat["spec"].update(route_spec)
    cluster.apply(
        secret("eu-key", op_ns, "sk-eu-test"),
        secret("us-key", op_ns, "sk-us-test"),
        provider(p_eu, eu_url + "/v1", "FR", "eu-key", op_ns),
        provider(p_us, us_url + "/v1", "US", "us-key", op_ns),
        chat,
    )
    return p_eu, p_us


def serve_one_route(cluster: Cluster, namespace: str, key: str = "sk-1", name: str = "chat") -> str:
    """A key, an EU provider using it, and route ``name`` on it in ``namespace``; the provider's
    name (unique to the test's operator namespace)."""
    op_ns = cluster.operator_namespace
    eu = f"{op_ns}-eu"
    cluster.apply(
        secret("k", op_ns, key),
        provider(eu, "https://eu.example/v1", "FR", "k", op_ns),
        route(name, namespace, name, eu),
    )
    return eu
