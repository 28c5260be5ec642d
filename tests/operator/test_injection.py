"""Sidecar injection as a pure function (``operator/injection.py``): what an opted-in pod gets."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from aiguillage.operator.auditkeys import SIGNING_KEY_FILE
from aiguillage.operator.errors import InjectionRefused
from aiguillage.operator.injection import (
    CONTAINER,
    INJECTED_LABEL,
    INJECTION_ANNOTATION,
    PLACEHOLDER_KEY,
    SidecarSpec,
    inject,
)
from aiguillage.sidecar.auditchain import DEFAULT_KEY_FILE

SPEC = SidecarSpec(image="registry.example/aiguillage:1.2.3", version="1.2.3")
APP_ENV = {
    "OPENAI_BASE_URL": "http://127.0.0.1:4000/v1",
    "OPENAI_API_KEY": PLACEHOLDER_KEY,
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000",
    "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
}


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "support", "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_sidecar_is_a_native_sidecar_started_first_with_a_startup_probe() -> None:
    out = inject(pod(initContainers=[{"name": "migrate", "image": "app:1"}]), SPEC).pod

    first, second = out["spec"]["initContainers"]
    assert (first["name"], second["name"]) == (CONTAINER, "migrate")
    assert first["restartPolicy"] == "Always"
    assert first["image"] == "registry.example/aiguillage:1.2.3"
    assert first["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 4001}
    assert "--listen=127.0.0.1:4000" in first["args"]
    assert "--health-listen=$(POD_IP):4001" in first["args"]
    assert "--ready-without-config" in first["args"]


def test_config_credentials_and_signing_key_are_mounted_read_only_into_the_sidecar_only() -> None:
    out = inject(pod(), SPEC).pod

    volumes = {v["name"]: v for v in out["spec"]["volumes"]}
    assert volumes["aiguillage-config"]["configMap"] == {
        "name": "aiguillage-config",
        "optional": True,
    }
    assert volumes["aiguillage-credentials"]["secret"] == {
        "secretName": "aiguillage-credentials",
        "optional": True,
    }
    # The operator's per-namespace audit signing key, where the sidecar looks for it.
    assert volumes["aiguillage-audit-key"]["secret"] == {
        "secretName": "aiguillage-audit-key",
        "optional": True,
    }
    sidecar = out["spec"]["initContainers"][0]
    assert {(m["mountPath"], m["readOnly"]) for m in sidecar["volumeMounts"]} == {
        ("/etc/aiguillage/config", True),
        ("/etc/aiguillage/credentials", True),
        ("/etc/aiguillage/audit-key", True),
    }
    assert f"/etc/aiguillage/audit-key/{SIGNING_KEY_FILE}" == DEFAULT_KEY_FILE
    assert "volumeMounts" not in out["spec"]["containers"][0]


def test_the_sidecar_knows_its_pod_through_the_downward_api() -> None:
    sidecar = inject(pod(), SPEC).pod["spec"]["initContainers"][0]

    assert env_of(sidecar) == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "POD_SERVICE_ACCOUNT": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}},
        "POD_IP": {"fieldRef": {"fieldPath": "status.podIP"}},
    }


def test_the_sidecar_meets_the_restricted_pod_security_standard() -> None:
    context = inject(pod(), SPEC).pod["spec"]["initContainers"][0]["securityContext"]

    assert context == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_image_resources_and_ports_come_from_the_spec() -> None:
    spec = SidecarSpec(
        image="local/aiguillage:dev",
        image_pull_policy="Never",
        port=4100,
        health_port=4101,
        resources={"requests": {"cpu": "5m"}},
    )
    out = inject(pod(), spec).pod
    sidecar = out["spec"]["initContainers"][0]

    assert (sidecar["image"], sidecar["imagePullPolicy"]) == ("local/aiguillage:dev", "Never")
    assert sidecar["resources"] == {"requests": {"cpu": "5m"}}
    assert sidecar["ports"] == [{"name": "aig-health", "containerPort": 4101, "protocol": "TCP"}]
    assert env_of(out["spec"]["containers"][0])["OPENAI_BASE_URL"] == "http://127.0.0.1:4100/v1"


def test_every_other_container_gets_the_sdk_variables_unless_it_sets_them() -> None:
    mine = [{"name": "OPENAI_BASE_URL", "value": "https://proxy.internal/v1"}]
    out = inject(
        pod(
            containers=[
                {"name": "app", "image": "app:1", "env": mine},
                {"name": "worker", "image": "app:1"},
            ],
            initContainers=[{"name": "migrate", "image": "app:1"}],
        ),
        SPEC,
    ).pod

    app, worker = out["spec"]["containers"]
    assert env_of(app) == {**APP_ENV, "OPENAI_BASE_URL": "https://proxy.internal/v1"}
    assert env_of(worker) == APP_ENV
    assert env_of(out["spec"]["initContainers"][1]) == APP_ENV  # starts after the sidecar
    assert "OPENAI_BASE_URL" not in env_of(out["spec"]["initContainers"][0])


def test_the_pod_says_what_was_injected() -> None:
    out = inject(
        pod(containers=[{"name": "app", "env": [{"name": "OPENAI_API_KEY", "value": "x"}]}]),
        SPEC,
    ).pod

    assert out["metadata"]["labels"] == {"app": "chat", INJECTED_LABEL: "true"}
    assert json.loads(out["metadata"]["annotations"][INJECTION_ANNOTATION]) == {
        "version": "1.2.3",
        "image": "registry.example/aiguillage:1.2.3",
        "container": CONTAINER,
        "listen": "127.0.0.1:4000",
        "mounts": {
            "aiguillage-config": "/etc/aiguillage/config",
            "aiguillage-credentials": "/etc/aiguillage/credentials",
            "aiguillage-audit-key": "/etc/aiguillage/audit-key",
        },
        "env": {"app": ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"]},
        "keptEnv": {"app": ["OPENAI_API_KEY"]},
    }


def test_injecting_twice_changes_nothing_and_the_input_is_untouched() -> None:
    original = pod()
    before = copy.deepcopy(original)
    once = inject(original, SPEC)
    twice = inject(once.pod, SPEC)

    assert original == before
    assert once.injected
    assert not twice.injected
    assert twice.pod == once.pod
    assert len(twice.pod["spec"]["initContainers"]) == 1


def test_the_pods_own_label_false_opts_out() -> None:
    opted_out = pod()
    opted_out["metadata"]["labels"]["aiguillage.dev/inject"] = "false"

    result = inject(opted_out, SPEC)

    assert not result.injected
    assert result.pod == opted_out


def test_an_unclear_label_value_is_injected_with_a_warning() -> None:
    unclear = pod()
    unclear["metadata"]["labels"]["aiguillage.dev/inject"] = "yes"

    result = inject(unclear, SPEC)

    assert result.injected
    assert result.warnings == [
        'label aiguillage.dev/inject="yes" is neither "true" nor "false": the namespace\'s '
        "opt-in applies and the sidecar is injected"
    ]


def test_env_from_is_overridden_with_a_warning() -> None:
    result = inject(
        pod(containers=[{"name": "app", "envFrom": [{"configMapRef": {"name": "settings"}}]}]),
        SPEC,
    )

    assert result.warnings == [
        'container "app": OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, '
        "ANTHROPIC_API_KEY set by the sidecar injection take precedence over envFrom; "
        "name them in env to keep your own"
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"hostNetwork": True},
            "spec.hostNetwork: a host-network pod shares the node's 127.0.0.1, where the "
            "sidecar's port 4000 would clash between pods",
        ),
        (
            {"containers": [{"name": "web", "ports": [{"containerPort": 4000}]}]},
            'spec.containers[0].ports: container "web" declares port 4000, which the '
            "aiguillage sidecar uses for its API",
        ),
        (
            {
                "containers": [{"name": "web"}],
                "initContainers": [{"name": "probe", "ports": [{"containerPort": 4001}]}],
            },
            'spec.initContainers[0].ports: container "probe" declares port 4001, which the '
            "aiguillage sidecar uses for its health probes",
        ),
        (
            {"volumes": [{"name": "aiguillage-config", "emptyDir": {}}]},
            'spec.volumes: a volume is already named "aiguillage-config"',
        ),
    ],
    ids=["host-network", "port-clash", "health-port-clash", "volume-clash"],
)
def test_a_pod_whose_sidecar_could_not_work_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InjectionRefused) as refused:
        inject(pod(**spec), SPEC)

    assert message in str(refused.value)
