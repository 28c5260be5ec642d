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
