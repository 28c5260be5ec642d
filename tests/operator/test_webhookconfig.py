"""The webhook configurations (``operator/webhookconfig.py``): which pods reach injection.

The selectors are evaluated here the way the API server evaluates label selectors, for every
combination of namespace and pod labels: a pod reaches exactly one injection webhook when it
opted in, and none otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiguillage.operator.webhookconfig import (
    AdmissionPolicy,
    mutating_configuration,
    validating_configuration,
)

CLIENT = {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}
POLICY = AdmissionPolicy(operator_namespace="aiguillage-system")


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchExpressions only, as used here)."""
    for expr in (selector or {}).get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
    return True


def webhooks_called(ns: str, ns_label: str | None, pod_label: str | None) -> list[str]:
    ns_labels = {"kubernetes.io/metadata.name": ns}
    if ns_label is not None:
        ns_labels["aiguillage.dev/inject"] = ns_label
    pod_labels = {} if pod_label is None else {"aiguillage.dev/inject": pod_label}
    return [
        hook["name"]
        for hook in mutating_configuration(CLIENT, POLICY)["webhooks"]
        if matches(hook["namespaceSelector"], ns_labels)
        and matches(hook["objectSelector"], pod_labels)
    ]


@pytest.mark.parametrize(
    ("ns_label", "pod_label", "called"),
    [
        ("true", None, ["namespace.inject.aiguillage.dev"]),
        ("true", "true", ["namespace.inject.aiguillage.dev"]),
        ("true", "false", []),
        (None, None, []),
        (None, "true", ["pod.inject.aiguillage.dev"]),
        (None, "false", []),
        ("false", None, []),
        ("false", "true", ["pod.inject.aiguillage.dev"]),
        ("true", "yes", ["namespace.inject.aiguillage.dev"]),  # the handler warns about it
    ],
)
def test_a_pod_reaches_one_webhook_exactly_when_it_opted_in(
    ns_label: str | None, pod_label: str | None, called: list[str]
) -> None:
    assert webhooks_called("shop", ns_label, pod_label) == called


@pytest.mark.parametrize(
    "ns", ["kube-system", "kube-public", "kube-node-lease", "aiguillage-system"]
)
def test_system_and_operator_namespaces_never_reach_it(ns: str) -> None:
    assert webhooks_called(ns, "true", "true") == []


def test_opted_in_pods_fail_closed_and_only_pod_creation_is_intercepted() -> None:
    for hook in mutating_configuration(CLIENT, POLICY)["webhooks"]:
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["rules"] == [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ]
        assert hook["clientConfig"] == {"url": "https://127.0.0.1:9443/inject", "caBundle": "Q0E="}


def test_validation_fails_open_and_each_webhook_has_its_path() -> None:
    config = validating_configuration(
        {"service": {"name": "aig-webhook", "namespace": "aiguillage-system", "port": 443}},
        POLICY,
    )

    assert [(h["name"], h["failurePolicy"], h["clientConfig"]["service"]["path"])
            for h in config["webhooks"]] == [
        ("airoute.aiguillage.dev", "Ignore", "/airoute"),
        ("aiprovider.aiguillage.dev", "Ignore", "/aiprovider"),
        ("aipolicy.aiguillage.dev", "Ignore", "/aipolicy"),
    ]  # fmt: skip
