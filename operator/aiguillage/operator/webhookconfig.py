"""The webhook configurations: which API requests reach the operator's admission webhooks.

One table (:data:`VALIDATING`, :data:`INJECT`) says what each webhook of the operator
handles; `aiguillage.operator.webhook` registers its kopf handlers from it, and
:func:`validating_configuration` / :func:`mutating_configuration` build the
``ValidatingWebhookConfiguration`` and ``MutatingWebhookConfiguration`` objects from it. The
chart renders the same objects with a Service reference (a chart test compares them); without
the chart (local runs, tests) :class:`ManagedWebhookServer` writes them with the webhook's URL.

Which pods get a sidecar is decided here, by selectors, so the API server never even calls
the operator for the others (and their creation never depends on it): two webhooks, so that a
pod is sent to exactly one of them —

* ``namespace.inject.aiguillage.dev``: namespaces labelled ``aiguillage.dev/inject: "true"``,
  pods there unless labelled ``"false"``;
* ``pod.inject.aiguillage.dev``: pods labelled ``"true"`` in the other namespaces (unlabelled
  or ``"false"``: the pod's label wins);

never in ``kube-system``, ``kube-public``, ``kube-node-lease`` or the operator's own namespace
(the operator must be able to start when its webhook cannot answer).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.injection import INJECT_LABEL

log = logging.getLogger("aiguillage.operator")

CONFIGURATION_NAME = "aiguillage.dev"  # of both configurations, when the operator manages them
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


@dataclass(frozen=True)
class Webhook:
    id: str  # kopf handler id, and the last component of the webhook's URL path
    name: str  # name of the webhook in its configuration
    group: str
    plural: str
    scope: str
    operations: tuple[Operation, ...]


ROUTES = Webhook("airoute", "airoute.aiguillage.dev", GROUP, "airoutes", "Namespaced",
                 ("CREATE", "UPDATE"))  # fmt: skip
PROVIDERS = Webhook("aiprovider", "aiprovider.aiguillage.dev", GROUP, "aiproviders", "Cluster",
                    ("CREATE", "UPDATE"))  # fmt: skip
POLICIES = Webhook("aipolicy", "aipolicy.aiguillage.dev", GROUP, "aipolicies", "Cluster",
                   ("CREATE", "UPDATE"))  # fmt: skip
VALIDATING = (ROUTES, PROVIDERS, POLICIES)
INJECT = Webhook("inject", "inject.aiguillage.dev", "", "pods", "Namespaced", ("CREATE",))


@dataclass(frozen=True)
class AdmissionPolicy:
    """How the configurations treat requests; the chart sets the same from its values."""

    operator_namespace: str
    excluded_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    # Opted-in pods are refused while the webhook cannot answer (a pod without its sidecar
    # would only fail at its first AI request); unlabelled pods never reach the webhook.
    injection_failure_policy: str = "Fail"
    # The sidecar enforces residency whatever is admitted: validation failing open keeps
    # GitOps syncs going while the operator restarts (status reports what it would say).
    validation_failure_policy: str = "Ignore"
    timeout_seconds: int = 10
    inject: bool = True  # False: no mutating configuration (the operator injects nothing)


def _client_config(base: dict[str, Any], hook: Webhook) -> dict[str, Any]:
    config = copy.deepcopy(base)
    if config.get("url"):
        config["url"] = f"{str(config['url']).rstrip('/')}/{hook.id}"
    if config.get("service"):
        config["service"]["path"] = f"{config['service'].get('path') or ''}/{hook.id}"
    return config


def _rules(hook: Webhook) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [hook.group],
            "apiVersions": [VERSION if hook.group == GROUP else "v1"],
            "operations": list(hook.operations),
            "resources": [hook.plural],
            "scope": hook.scope,
        }
    ]


def validating_configuration(
    client_config: dict[str, Any], policy: AdmissionPolicy, name: str = CONFIGURATION_NAME
) -> dict[str, Any]:
    webhooks = []
    for hook in VALIDATING:
        failure = policy.validation_failure_policy if hook is ROUTES else "Ignore"
        webhooks.append(
            {
                "name": hook.name,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure,
                "timeoutSeconds": policy.timeout_seconds,
                "clientConfig": _client_config(client_config, hook),
                "rules": _rules(hook),
            }
        )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": webhooks,
    }


def _expression(key: str, operator: str, values: Sequence[str]) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


def mutating_configuration(
    client_config: dict[str, Any], policy: AdmissionPolicy, name: str = CONFIGURATION_NAME
) -> dict[str, Any]:
    excluded = sorted({*policy.excluded_namespaces, policy.operator_namespace})
    not_excluded = _expression(NAMESPACE_NAME_LABEL, "NotIn", excluded)
    common = {
        "admissionReviewVersions": ["v1"],
        # Events are posted about pods of namespaces without routes, except on dry runs.
        "sideEffects": "NoneOnDryRun",
        "failurePolicy": policy.injection_failure_policy,
        "timeoutSeconds": policy.timeout_seconds,
        "reinvocationPolicy": "Never",
        "matchPolicy": "Equivalent",
        "clientConfig": _client_config(client_config, INJECT),
        "rules": _rules(INJECT),
    }
    by_namespace = {
        "name": f"namespace.{INJECT.name}",
        **common,
        "namespaceSelector": {
            "matchExpressions": [_expression(INJECT_LABEL, "In", ["true"]), not_excluded]
        },
        "objectSelector": {"matchExpressions": [_expression(INJECT_LABEL, "NotIn", ["false"])]},
    }
    by_pod = {
        "name": f"pod.{INJECT.name}",
        **common,
        "namespaceSelector": {
            "matchExpressions": [_expression(INJECT_LABEL, "NotIn", ["true"]), not_excluded]
        },
        "objectSelector": {"matchExpressions": [_expression(INJECT_LABEL, "In", ["true"])]},
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [by_namespace, by_pod],
    }


async def publish(api: client.AdmissionregistrationV1Api, config: dict[str, Any]) -> None:
    """Create or replace one webhook configuration."""
    kind = config["kind"]
    suffix = "validating" if kind == "ValidatingWebhookConfiguration" else "mutating"
    name = config["metadata"]["name"]
    read = getattr(api, f"read_{suffix}_webhook_configuration")
    try:
        current = await asyncio.to_thread(read, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        create = getattr(api, f"create_{suffix}_webhook_configuration")
        await asyncio.to_thread(create, config)
        return
    version = current.metadata.resource_version
    body = {**config, "metadata": {**config["metadata"], "resourceVersion": version}}
    replace = getattr(api, f"replace_{suffix}_webhook_configuration")
    await asyncio.to_thread(replace, name, body)


class ManagedWebhookServer(kopf.WebhookServer):
    """kopf's webhook server, also writing both webhook configurations with its URL and CA
    whenever it (re)starts listening. Used when the chart does not render them (local runs).

    They are left in place when the operator stops, as the chart's are: what happens to
    opted-in pods while the operator is away is the configurations' failure policy."""

    def __init__(self, *, api: client.AdmissionregistrationV1Api, policy: AdmissionPolicy,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.api = api
        self.policy = policy

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for client_config in super().__call__(fn):
            base = dict(client_config)
            await publish(self.api, validating_configuration(base, self.policy))
            if self.policy.inject:
                await publish(self.api, mutating_configuration(base, self.policy))
            log.info("webhook configurations %s written for %s", CONFIGURATION_NAME, base["url"])
            yield client_config
