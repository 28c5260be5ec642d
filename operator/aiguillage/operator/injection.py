"""Sidecar injection as a pure function: a Pod as submitted → the Pod as it should be created.

The mutating admission webhook (`aiguillage.operator.webhook`) calls :func:`inject` for each
Pod CREATE its webhook configuration selects (`aiguillage.operator.webhookconfig` says which);
everything here is plain data in, plain data out, so every decision is unit-tested without an
API server. What an injected pod gets:

* the sidecar as a *native sidecar*: the first init container, ``restartPolicy: Always``, so
  it starts before every other container (init containers included) and stops after them;
  a startup probe on ``/readyz`` holds the app containers back until it serves;
* probes reach it on the pod IP (``--health-listen``: health, readiness and metrics only)
  because the kubelet probes (and Prometheus scrapes) the pod IP while the API stays on
  127.0.0.1;
* the namespace's ConfigMap ``aiguillage-config`` and Secrets ``aiguillage-credentials`` and
  ``aiguillage-audit-key`` (the key that signs its audit checkpoints, made by the operator:
  ``aiguillage.operator.auditkeys``), all ``optional`` (a namespace without routes still
  starts: ``--ready-without-config``; unsigned checkpoints say so), mounted read-only into the
  sidecar only;
* its pod's identity (name, namespace, service account, IP) through the downward API;
* a security context that passes the ``restricted`` Pod Security Standard;
* ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``
  in every other container (init containers too: they start after the sidecar is ready) that
  does not name them in ``env`` — a value given in ``env`` is the team's choice and is kept;
* the label ``aiguillage.dev/injected: "true"`` (what config propagation selects) and the
  annotation ``aiguillage.dev/injection`` saying what was injected, from which image/version.

Running it on its own output changes nothing (the API server may call a webhook twice, and a
pod exported with ``kubectl get -o yaml`` may be re-applied).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from aiguillage.operator.auditkeys import SIGNING_SECRET
from aiguillage.operator.errors import InjectionRefused
from aiguillage.sidecar.auditchain import DEFAULT_KEY_FILE

INJECT_LABEL = "aiguillage.dev/inject"
INJECTED_LABEL = "aiguillage.dev/injected"
INJECTION_ANNOTATION = "aiguillage.dev/injection"
CONTAINER = "aiguillage-sidecar"
CONFIG_VOLUME = "aiguillage-config"
CREDENTIALS_VOLUME = "aiguillage-credentials"
CONFIG_MAP = "aiguillage-config"
SECRET = "aiguillage-credentials"
CONFIG_DIR = "/etc/aiguillage/config"
CREDENTIALS_DIR = "/etc/aiguillage/credentials"
AUDIT_KEY_VOLUME = "aiguillage-audit-key"
AUDIT_KEY_DIR = DEFAULT_KEY_FILE.rsplit("/", 1)[0]  # where the sidecar looks by default
# Apps never hold a provider key: the SDKs insist on one, so they get a placeholder that the
# sidecar drops (it sends each provider its own key).
PLACEHOLDER_KEY = "unused-aiguillage-sidecar-holds-the-keys"
DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "25m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def _version() -> str:
    try:
        return metadata.version("aiguillage")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


@dataclass(frozen=True)
class SidecarSpec:
    """What to inject: set from the operator's flags, which the chart sets from its values."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    port: int = 4000
    health_port: int = 4001
    resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    run_as_user: int = 65532
    version: str = field(default_factory=_version)

    def app_env(self) -> dict[str, str]:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "OPENAI_BASE_URL": f"{base}/v1",
            "OPENAI_API_KEY": PLACEHOLDER_KEY,
            "ANTHROPIC_BASE_URL": base,
            "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        }


@dataclass(frozen=True)
class Injection:
    pod: dict[str, Any]  # the pod to create (a new object; the input is never modified)
    injected: bool  # False: left as it was (opted out, or already injected)
    reason: str  # why, in words (for the operator's log)
    warnings: list[str] = field(default_factory=list)  # for `kubectl` (admission warnings)


def opted_out(pod: Mapping[str, Any]) -> bool:
    """The pod's own label wins over its namespace's: ``"false"`` opts out."""
    return _labels(pod).get(INJECT_LABEL) == "false"


def inject(pod: Mapping[str, Any], spec: SidecarSpec) -> Injection:
    """The pod with the sidecar injected; raises InjectionRefused when it cannot work."""
    label = _labels(pod).get(INJECT_LABEL)
    if label == "false":
        return Injection(copy.deepcopy(dict(pod)), False, f"{INJECT_LABEL}=false on the pod")
    warnings = []
    if label not in (None, "true"):
        warnings.append(
            f'label {INJECT_LABEL}="{label}" is neither "true" nor "false": the namespace\'s '
            "opt-in applies and the sidecar is injected"
        )
    podspec = pod.get("spec") or {}
    if any(c.get("name") == CONTAINER for c in _all_containers(podspec)):
        return Injection(copy.deepcopy(dict(pod)), False, f"container {CONTAINER} already there")
    _refuse_if_unworkable(podspec, spec)

    out = copy.deepcopy(dict(pod))
    meta = out.setdefault("metadata", {})
    podspec = out.setdefault("spec", {})
    env_added: dict[str, list[str]] = {}
    env_kept: dict[str, list[str]] = {}
    wanted = spec.app_env()
    for container in _all_containers(podspec):
        env = container.setdefault("env", [])
        named = {e.get("name") for e in env}
        added = [name for name in wanted if name not in named]
        env.extend({"name": name, "value": wanted[name]} for name in added)
        if added:
            env_added[container["name"]] = added
        if len(added) < len(wanted):
            env_kept[container["name"]] = [name for name in wanted if name in named]
        if container.get("envFrom") and added:
            warnings.append(
                f'container "{container["name"]}": {", ".join(added)} set by the sidecar '
                "injection take precedence over envFrom; name them in env to keep your own"
            )
    podspec["initContainers"] = [_sidecar(spec), *podspec.get("initContainers", [])]
    podspec["volumes"] = [*podspec.get("volumes", []), *_volumes()]
    meta.setdefault("labels", {})[INJECTED_LABEL] = "true"
    meta.setdefault("annotations", {})[INJECTION_ANNOTATION] = json.dumps(
        {
            "version": spec.version,
            "image": spec.image,
            "container": CONTAINER,
            "listen": f"127.0.0.1:{spec.port}",
            "mounts": {
                CONFIG_MAP: CONFIG_DIR,
                SECRET: CREDENTIALS_DIR,
                SIGNING_SECRET: AUDIT_KEY_DIR,
            },
            "env": env_added,
            **({"keptEnv": env_kept} if env_kept else {}),
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    return Injection(out, True, "injected", warnings)


def _labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get("labels") or {}


def _all_containers(podspec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*podspec.get("initContainers", []), *podspec.get("containers", [])]


def _refuse_if_unworkable(podspec: Mapping[str, Any], spec: SidecarSpec) -> None:
    """Refuse rather than create a pod whose sidecar cannot run (a clear error at creation is
    better than a pod that crash-loops or silently has no gateway)."""
    problems = []
    if podspec.get("hostNetwork"):
        problems.append(
            "spec.hostNetwork: a host-network pod shares the node's 127.0.0.1, where the "
            f"sidecar's port {spec.port} would clash between pods; run it without hostNetwork "
            f'or label it {INJECT_LABEL}: "false"'
        )
    ours = {spec.port: "its API", spec.health_port: "its health probes"}
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(podspec.get(kind, [])):
            for port in container.get("ports", []):
                number = port.get("containerPort")
                if number in ours:
                    problems.append(
                        f"spec.{kind}[{index}].ports: container "
                        f'"{container.get("name")}" declares port {number}, which the aiguillage '
                        f"sidecar uses for {ours[number]}; use another port or label the pod "
                        f'{INJECT_LABEL}: "false"'
                    )
    names = {v.get("name") for v in podspec.get("volumes", [])}
    for volume in (CONFIG_VOLUME, CREDENTIALS_VOLUME, AUDIT_KEY_VOLUME):
        if volume in names:
            problems.append(
                f'spec.volumes: a volume is already named "{volume}", which the aiguillage '
                "sidecar needs for its own mount; rename it"
            )
    if problems:
        raise InjectionRefused(problems)


def _field(path: str) -> dict[str, Any]:
    return {"fieldRef": {"fieldPath": path}}


def _sidecar(spec: SidecarSpec) -> dict[str, Any]:
    health: dict[str, Any] = {"path": "/readyz", "port": spec.health_port}
    return {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "restartPolicy": "Always",  # a native sidecar: up before, down after the app
        "args": [
            "sidecar",
            f"--config-dir={CONFIG_DIR}",
            f"--credentials-dir={CREDENTIALS_DIR}",
            f"--listen=127.0.0.1:{spec.port}",
            # Expanded by the kubelet; an IPv6 pod IP needs no brackets (the port is last).
            f"--health-listen=$(POD_IP):{spec.health_port}",
            "--ready-without-config",
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": _field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": _field("metadata.namespace")},
            {"name": "POD_SERVICE_ACCOUNT", "valueFrom": _field("spec.serviceAccountName")},
            {"name": "POD_IP", "valueFrom": _field("status.podIP")},
        ],
        "ports": [{"name": "aig-health", "containerPort": spec.health_port, "protocol": "TCP"}],
        # The app containers start once this passes: the sidecar listens and has its config.
        "startupProbe": {
            "httpGet": health,
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 120,
        },
        "readinessProbe": {"httpGet": health, "periodSeconds": 10, "timeoutSeconds": 2},
        "livenessProbe": {
            "httpGet": {**health, "path": "/healthz"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": copy.deepcopy(dict(spec.resources)),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_DIR, "readOnly": True},
            {"name": AUDIT_KEY_VOLUME, "mountPath": AUDIT_KEY_DIR, "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _volumes() -> Sequence[dict[str, Any]]:
    return [
        {"name": CONFIG_VOLUME, "configMap": {"name": CONFIG_MAP, "optional": True}},
        {"name": CREDENTIALS_VOLUME, "secret": {"secretName": SECRET, "optional": True}},
        {"name": AUDIT_KEY_VOLUME, "secret": {"secretName": SIGNING_SECRET, "optional": True}},
    ]
