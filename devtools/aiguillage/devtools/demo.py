"""The demo app on the node: an openai-SDK program next to an Aiguillage sidecar, and its answers.

`demo_deployment` is what an app team would write: a Deployment labelled
``aiguillage.dev/inject: "true"`` whose container (the demo image, `aiguillage.devtools.
demo_app`) calls ``127.0.0.1:4000`` with the official openai SDK. When the cluster's operator
serves sidecar injection, that is all; where it does not (``sidecar_image`` given), the
Deployment carries the sidecar itself, as a native sidecar (an init container with
``restartPolicy: Always``) set up the way injection sets it up: the namespace's ConfigMap and
Secret mounted read-only into the sidecar only, the pod's identity from the downward API, a
restricted security context. `answers` reads what the app printed.

``make dev`` and the e2e tests deploy it the same way, through `deploy` and `wait_for_answers`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiguillage.devtools.waiting import wait_for

__all__ = [
    "APP_NAME",
    "INJECT_LABEL",
    "RESTRICTED",
    "answers",
    "demo_deployment",
    "deploy",
    "wait_for_answers",
]

APP_NAME = "demo"
INJECT_LABEL = "aiguillage.dev/inject"
SIDECAR_PORT = 4000

RESTRICTED: dict[str, Any] = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""A container security context that passes the ``restricted`` Pod Security Standard."""


class Kubectl(Protocol):
    """What this module needs of a cluster: `Node` and `ControlPlane` both have it."""

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = ...
    ) -> Any: ...


def demo_deployment(
    namespace: str,
    demo_image: str,
    *,
    models: list[str],
    sidecar_image: str | None = None,
    interval: float = 30.0,
) -> dict[str, Any]:
    """The demo Deployment; with ``sidecar_image``, carrying its own sidecar (no injection)."""
    app = {
        "name": "app",
        "image": demo_image,
        "imagePullPolicy": "Never",
        "env": [
            {"name": "DEMO_MODELS", "value": ",".join(models)},
            {"name": "DEMO_INTERVAL", "value": str(interval)},
        ],
        "securityContext": RESTRICTED,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    spec: dict[str, Any] = {"containers": [app], "automountServiceAccountToken": False}
    if sidecar_image is not None:
        spec["initContainers"] = [_sidecar(sidecar_image)]
        spec["volumes"] = [
            {"name": "aiguillage-config", "configMap": {"name": "aiguillage-config"}},
            {"name": "aiguillage-credentials", "secret": {"secretName": "aiguillage-credentials"}},
        ]
    labels = {"app": APP_NAME}
    inject = "false" if sidecar_image is not None else "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP_NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                # A pod carrying its own sidecar opts out of injection (it would clash).
                "metadata": {"labels": {**labels, INJECT_LABEL: inject}},
                "spec": spec,
            },
        },
    }


def _sidecar(image: str) -> dict[str, Any]:
    """The sidecar as injection would add it (a stand-in until the operator injects it)."""
    args = ["sidecar", "--config-dir", "/etc/aiguillage/config"]
    args += ["--credentials-dir", "/etc/aiguillage/credentials"]
    args += ["--listen", f"127.0.0.1:{SIDECAR_PORT}"]
    from_pod = {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "POD_SERVICE_ACCOUNT": "spec.serviceAccountName",
    }
    readyz = (
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{SIDECAR_PORT}/readyz')"
    )
    mounts = [
        {"name": f"aiguillage-{kind}", "mountPath": f"/etc/aiguillage/{kind}", "readOnly": True}
        for kind in ("config", "credentials")
    ]
    return {
        "name": "aiguillage",
        "image": image,
        "imagePullPolicy": "Never",
        "restartPolicy": "Always",  # a native sidecar: started first, stopped last
        "args": args,
        "env": [
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
            for name, path in from_pod.items()
        ],
        # The kubelet probes over the pod IP and the sidecar listens on loopback only: ask from
        # inside the container. App containers start once this passes.
        "startupProbe": {
            "exec": {"command": ["python3", "-c", readyz]},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "volumeMounts": mounts,
        "securityContext": RESTRICTED,
        "resources": {"requests": {"cpu": "10m", "memory": "48Mi"}},
    }


def deploy(cluster: Kubectl, deployment: dict[str, Any]) -> None:
    """Apply the demo Deployment (replacing an earlier one)."""
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))


def answers(cluster: Kubectl, namespace: str) -> list[dict[str, Any]]:
    """The JSON lines the demo app printed so far (empty while it is not running)."""
    out = cluster.kubectl(
        "logs", f"deployment/{APP_NAME}", "-c", "app", "-n", namespace, check=False
    ).stdout
    found = []
    for line in out.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found


def wait_for_answers(
    cluster: Kubectl, namespace: str, models: list[str], timeout: float = 180.0
) -> list[dict[str, Any]]:
    """Wait until the app printed an answer (not an error) for every model; return them."""

    def probe() -> list[dict[str, Any]] | None:
        got = {a["model"]: a for a in answers(cluster, namespace) if "answer" in a}
        return [got[m] for m in models] if all(m in got for m in models) else None

    return wait_for(probe, timeout=timeout, interval=0.5, what=f"the demo app's answers ({models})")
