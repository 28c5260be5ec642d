"""Sidecar injection by the operator's mutating webhook, on the real API server.

Pods are created for real or with ``--dry-run=server`` (admission runs either way, Pod
Security admission after the webhook); with no node they stay Pending, which is all these
tests need: what the API server stored is what a kubelet would run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import Cluster, webhook_cluster
from tests.e2e.manifests import serve_one_route

pytestmark = pytest.mark.e2e

IMAGE = "registry.example/aiguillage:test"
SIDECAR = "aiguillage-sidecar"
# An app container that meets the restricted Pod Security Standard by itself.
RESTRICTED_APP = {
    "name": "app",
    "image": "registry.example/app:1",
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


@pytest.fixture
def injecting(crds: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:
    """An operator serving the webhooks (configurations written by itself) and injecting."""
    with webhook_cluster(crds, tmp_path, "--sidecar-image", IMAGE) as c:
        yield c


def namespace(cluster: Cluster, **labels: str) -> str:
    name = f"inj-{uuid.uuid4().hex[:10]}"
    cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    return name


def pod_doc(ns: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{uuid.uuid4().hex[:6]}",
            "namespace": ns,
            "labels": labels or {},
        },
        "spec": {"containers": [dict(RESTRICTED_APP)], **spec},
    }


def create(
    cluster: Cluster, doc: dict[str, Any], *, dry_run: bool = True, check: bool = True
) -> tuple[dict[str, Any], str]:
    """Create the pod (server-side dry run by default); (stored pod, kubectl's stderr)."""
    args = ["create", "-o", "json", "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    result = cluster.plane.kubectl(*args, input=yaml.safe_dump(doc), check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return (json.loads(result.stdout) if result.returncode == 0 else {}), result.stderr


def injected(pod: dict[str, Any]) -> bool:
    names = [c["name"] for c in pod["spec"].get("initContainers", [])]
    return SIDECAR in names


def test_a_pod_in_an_opted_in_namespace_gets_the_native_sidecar(injecting: Cluster) -> None:
    ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})

    pod, _ = create(injecting, pod_doc(ns))

    sidecar = pod["spec"]["initContainers"][0]
    assert (sidecar["name"], sidecar["image"], sidecar["restartPolicy"]) == (
        SIDECAR,
        IMAGE,
        "Always",
    )
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["metadata"]["labels"]["aiguillage.dev/injected"] == "true"
    assert json.loads(pod["metadata"]["annotations"]["aiguillage.dev/injection"])["image"] == IMAGE
    app_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert app_env["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1"
    assert app_env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000"


def test_the_pods_label_wins_over_its_namespaces(injecting: Cluster) -> None:
    opted_in_ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})
    plain_ns = namespace(injecting)
    opted_out_ns = namespace(injecting, **{"aiguillage.dev/inject": "false"})

    out, _ = create(injecting, pod_doc(opted_in_ns, {"aiguillage.dev/inject": "false"}))
    plain, _ = create(injecting, pod_doc(plain_ns))
    into_plain, _ = create(injecting, pod_doc(plain_ns, {"aiguillage.dev/inject": "true"}))
    into_out, _ = create(injecting, pod_doc(opted_out_ns, {"aiguillage.dev/inject": "true"}))

    assert (injected(out), injected(plain), injected(into_plain), injected(into_out)) == (
        False,
        False,
        True,
        True,
    )
    assert "aiguillage.dev/injected" not in plain["metadata"].get("labels", {})


def test_the_operators_namespace_is_never_injected(injecting: Cluster) -> None:
    op_ns = injecting.operator_namespace
    injecting.plane.kubectl("label", "namespace", op_ns, "aiguillage.dev/inject=true")

    pod, _ = create(injecting, pod_doc(op_ns, {"aiguillage.dev/inject": "true"}))

    assert not injected(pod)


def test_an_injected_pod_passes_the_restricted_pod_security_standard(injecting: Cluster) -> None:
    ns = namespace(
        injecting,
        **{"aiguillage.dev/inject": "true", "pod-security.kubernetes.io/enforce": "restricted"},
    )
    # Pod Security admission is really enforcing here: a pod with no security context is refused.
    bare = pod_doc(ns, {"aiguillage.dev/inject": "false"})
    bare["spec"]["containers"][0].pop("securityContext")
    _, refused = create(injecting, bare, check=False)
    assert 'violates PodSecurity "restricted:latest"' in refused

    pod, stderr = create(injecting, pod_doc(ns), dry_run=False)

    assert injected(pod)
    assert "PodSecurity" not in stderr


def test_injecting_an_injected_pod_again_changes_nothing(injecting: Cluster) -> None:
    ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})
    first, _ = create(injecting, pod_doc(ns))
    kept = ("name", "namespace", "labels", "annotations")
    metadata = {k: first["metadata"][k] for k in kept}
    again = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": first["spec"]}

    second, _ = create(injecting, again)

    assert second["spec"]["initContainers"] == first["spec"]["initContainers"]
    assert second["spec"]["containers"] == first["spec"]["containers"]
    assert second["metadata"]["annotations"] == first["metadata"]["annotations"]


def test_a_namespace_without_routes_gets_a_sidecar_a_warning_and_an_event(
    injecting: Cluster,
) -> None:
    ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})

    pod, stderr = create(injecting, pod_doc(ns), dry_run=False)

    assert injected(pod)
    warning = f"namespace {ns} has no AIRoute: its aiguillage sidecar serves no model"
    assert f"Warning: {warning}" in stderr

    def event() -> dict[str, Any] | None:
        out = injecting.plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout
        found = [e for e in json.loads(out)["items"] if e["reason"] == "NoAIRoute"]
        return found[0] if found else None

    posted = wait_for(event, timeout=30, what="the NoAIRoute event")
    assert posted["type"] == "Warning"
    assert posted["involvedObject"]["name"] == pod["metadata"]["name"]
    assert posted["message"].startswith(warning)


def test_a_namespace_with_routes_gets_no_warning(injecting: Cluster) -> None:
    ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})
    serve_one_route(injecting, ns)
    wait_for(
        lambda: injecting.get("configmap", "aiguillage-config", ns), timeout=30, what="outputs"
    )

    pod, stderr = create(injecting, pod_doc(ns))

    assert injected(pod)
    assert "no AIRoute" not in stderr


def test_a_pod_whose_sidecar_could_not_work_is_refused_with_the_reason(injecting: Cluster) -> None:
    ns = namespace(injecting, **{"aiguillage.dev/inject": "true"})
    doc = pod_doc(ns)
    doc["spec"]["containers"][0]["ports"] = [{"containerPort": 4000}]

    _, stderr = create(injecting, doc, check=False)

    assert 'admission webhook "namespace.inject.aiguillage.dev" denied the request' in stderr
    assert 'container "app" declares port 4000, which the aiguillage sidecar uses' in stderr


def test_with_the_operator_down_only_opted_in_pods_are_refused(injecting: Cluster) -> None:
    opted_in = namespace(injecting, **{"aiguillage.dev/inject": "true"})
    plain = namespace(injecting)
    injecting.operator.stop()

    _, refused = create(injecting, pod_doc(opted_in), check=False)
    _, refused_by_label = create(
        injecting, pod_doc(plain, {"aiguillage.dev/inject": "true"}), check=False
    )
    unlabelled, _ = create(injecting, pod_doc(plain), dry_run=False)
    opted_out, _ = create(injecting, pod_doc(opted_in, {"aiguillage.dev/inject": "false"}))

    assert 'failed calling webhook "namespace.inject.aiguillage.dev"' in refused
    assert 'failed calling webhook "pod.inject.aiguillage.dev"' in refused_by_label
    assert not injected(unlabelled)
    assert not injected(opted_out)

    injecting.operator.start()
    later = wait_for(
        lambda: create(injecting, pod_doc(opted_in), check=False)[0],
        timeout=60,
        what="injection once the operator is back",
    )
    assert injected(later)
