"""The chart installed for real on an API server of its own, and the operator run with the
chart's ServiceAccount (a token, the chart's RBAC, its Lease, its webhook configurations and its
ValidatingAdmissionPolicy): everything works with only the permissions the chart grants, then
``helm upgrade`` keeps the certificate and ``helm uninstall`` leaves what the docs say.

With no node here the Deployment's pods never run; the operator runs as a local process instead,
exactly as it would in its pod (same arguments, same identity). On the node, tests/e2e checks
the pod itself.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from aiguillage.devtools import processes
from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.waiting import wait_for
from aiguillage.operator.certs import self_signed
from tests.e2e.conftest import free_port, wait_until_primed
from tests.e2e.manifests import provider, route, secret

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[2] / "charts" / "aiguillage"
RELEASE, NS = "aig", "aiguillage-system"
NAME = "aig-aiguillage"
SA_USER = f"system:serviceaccount:{NS}:{NAME}"
IMAGE = "registry.local/aiguillage:test"


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    """An API server of its own: the chart installs the CRDs, which other tests apply by hand."""
    with ControlPlane() as cp:
        yield cp


def helm(plane: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(plane.bin_dir / "helm"), "--kubeconfig", str(plane.kubeconfig_path), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def kubectl_json(plane: ControlPlane, *args: str) -> dict[str, Any]:
    out = plane.kubectl(*args, "-o", "json", "--ignore-not-found").stdout.strip()
    return json.loads(out) if out else {}


def token_kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """A kubeconfig authenticating as the chart's ServiceAccount (TokenRequest API)."""
    token = plane.kubectl("create", "token", NAME, "-n", NS, "--duration=1h").stdout.strip()
    ca = base64.b64encode(plane.ca_cert_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": plane.server_url,
                                               "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }  # fmt: skip
    path.write_text(json.dumps(config))
    return path


WEBHOOK_KINDS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")


def point_webhooks_at(plane: ControlPlane, url: str, ca_pem: bytes) -> dict[str, Any]:
    """What the Service would do in a cluster: send the chart's webhooks to the local operator.
    Returns the client configs as the chart made them, to put back."""
    bundle = base64.b64encode(ca_pem).decode()
    original = {}
    for kind in WEBHOOK_KINDS:
        config = kubectl_json(plane, "get", kind, NAME)
        original[kind] = [hook["clientConfig"] for hook in config["webhooks"]]
        for hook in config["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"{url}{path}", "caBundle": bundle}
        plane.kubectl("replace", "-f", "-", input=json.dumps(config))
    return original


def restore_webhooks(plane: ControlPlane, original: dict[str, Any]) -> None:
    for kind in WEBHOOK_KINDS:
        config = kubectl_json(plane, "get", kind, NAME)
        for hook, client_config in zip(config["webhooks"], original[kind], strict=True):
            hook["clientConfig"] = client_config
        plane.kubectl("replace", "-f", "-", input=json.dumps(config))


def as_operator(plane: ControlPlane) -> Any:
    """A CoreV1Api impersonating the operator (as kubectl --as does, without kubectl's GETs)."""
    api = kubernetes.config.new_client_from_config(str(plane.kubeconfig_path))
    api.set_default_header("Impersonate-User", SA_USER)
    return kubernetes.client.CoreV1Api(api)


def can_i(plane: ControlPlane, *args: str) -> bool:
    result = plane.kubectl("auth", "can-i", "--as", SA_USER, *args, check=False)
    return result.stdout.strip() == "yes"


@pytest.fixture(scope="module")
def installed(plane: ControlPlane) -> ControlPlane:
    helm(plane, "install", RELEASE, str(CHART), "-n", NS, "--create-namespace",
         "--set", f"image.repository={IMAGE.split(':')[0]}", "--set", "image.tag=test")  # fmt: skip
    return plane


def test_install_creates_everything(installed: ControlPlane) -> None:
    plane = installed
    status = json.loads(helm(plane, "status", RELEASE, "-n", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    deployment = kubectl_json(plane, "get", "deployment", NAME, "-n", NS)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert deployment["spec"]["replicas"] == 2
    for kind, name in (
        ("mutatingwebhookconfiguration", NAME),
        ("validatingwebhookconfiguration", NAME),
        ("validatingadmissionpolicy", f"{NAME}-pod-patches"),
        ("crd", "airoutes.aiguillage.dev"),
    ):
        assert kubectl_json(plane, "get", kind, name), f"{kind}/{name} missing"
    for kind in ("lease", "poddisruptionbudget", "networkpolicy", "role", "secret"):
        assert kubectl_json(plane, "get", kind, NAME if kind != "secret" else f"{NAME}-webhook-tls",
                            "-n", NS), kind  # fmt: skip


def test_the_chart_grants_only_what_the_operator_needs(installed: ControlPlane) -> None:
    plane = installed
    app = "some-app"
    plane.kubectl("create", "namespace", app)
    assert can_i(installed, "get", "secrets", "-n", NS)  # provider keys
    assert not can_i(plane, "get", "secrets", "-n", app)  # any Secret of an app
    assert not can_i(plane, "list", "secrets", "--all-namespaces")
    assert can_i(plane, "get", "secrets/aiguillage-credentials", "-n", app)
    assert not can_i(plane, "get", "secrets/db-password", "-n", app)
    assert can_i(plane, "update", "configmaps/aiguillage-config", "-n", app)
    assert can_i(plane, "update", "secrets/aiguillage-audit-key", "-n", app)  # signing keys
    assert not can_i(plane, "delete", "secrets/aiguillage-audit-key", "-n", app)
    assert can_i(plane, "update", "configmaps/aiguillage-audit-keys", "-n", NS)  # public keys
    assert not can_i(plane, "update", "configmaps/aiguillage-audit-keys", "-n", app)
    assert not can_i(plane, "update", "configmaps/other", "-n", app)
    assert can_i(plane, "patch", "pods", "-n", app)
    assert not can_i(plane, "delete", "pods", "-n", app)
    assert not can_i(plane, "create", "pods", "-n", app)
    assert can_i(plane, "update", f"leases/{NAME}", "-n", NS)
    assert not can_i(plane, "update", "leases/other", "-n", NS)


def test_the_operator_runs_on_the_charts_permissions(
    installed: ControlPlane, tmp_path: Path
) -> None:
    plane = installed
    port, metrics_port = free_port(), free_port()
    cert = self_signed("127.0.0.1", tmp_path / "cert")
    env = {**plane.env(), "KUBECONFIG": str(token_kubeconfig(plane, tmp_path / "sa.kubeconfig")),
           "POD_NAME": "aig-aiguillage-0", "POD_ID": "aig-aiguillage-0"}  # fmt: skip
    args = (  # the Deployment's arguments (see templates/deployment.yaml)
        "--leader-elect", f"--leader-election-lease={NAME}",
        f"--webhook-listen=127.0.0.1:{port}", f"--webhook-cert={cert.certfile}",
        f"--webhook-key={cert.keyfile}", "--webhook-unmanaged",
        f"--sidecar-image={IMAGE}", f"--metrics-listen=127.0.0.1:{metrics_port}",
    )  # fmt: skip
    operator = processes.operator(env, NS, tmp_path / "operator.log", *args).start()
    original: dict[str, Any] = {}
    try:
        wait_until_primed(operator)
        original = point_webhooks_at(plane, f"https://127.0.0.1:{port}", cert.ca_pem)
        app = f"app-{uuid.uuid4().hex[:6]}"
        plane.kubectl("create", "namespace", app)
        plane.kubectl("label", "namespace", app, "aiguillage.dev/inject=true")

        # Injection through the chart's mutating webhook configuration.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": app},
            "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]},
        }
        created = plane.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(pod))
        assert json.loads(created.stdout)["spec"]["initContainers"][0]["image"] == IMAGE

        docs = [secret("k", NS, "sk-1"),
                provider("eu", "https://eu.example/v1", "FR", "k", NS),
                route("chat", app, "chat", "eu")]  # fmt: skip
        plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

        # Render, status, propagation (through the ValidatingAdmissionPolicy), the Lease.
        def outputs_hash() -> str | None:
            cm = kubectl_json(plane, "get", "configmap", "aiguillage-config", "-n", app)
            return (cm.get("metadata", {}).get("annotations") or {}).get(
                "aiguillage.dev/outputs-hash"
            )

        written = wait_for(outputs_hash, timeout=30, what="the namespace's outputs")
        wait_for(
            lambda: (kubectl_json(plane, "get", "pod", "web", "-n", app)["metadata"]
                     .get("annotations", {}).get("aiguillage.dev/outputs-hash")) == written,
            timeout=30, what="the pod annotated",
        )  # fmt: skip
        wait_for(
            lambda: any(c["type"] == "Ready" and c["status"] == "True" for c in
                        kubectl_json(plane, "get", "airoute", "chat", "-n", app)
                        .get("status", {}).get("conditions", [])),
            timeout=30, what="the route's status",
        )  # fmt: skip
        lease = kubectl_json(plane, "get", "lease", NAME, "-n", NS)
        assert lease["spec"]["holderIdentity"].startswith("aig-aiguillage-0_")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        assert b"aiguillage_operator_leader 1" in metrics
        assert b'aiguillage_operator_injections_total{result="injected"} 1' in metrics
        assert b"aiguillage_operator_pods_patched_total 1" in metrics
        # The namespace's audit signing key, and its public key published for auditors.
        wait_for(lambda: kubectl_json(plane, "get", "secret", "aiguillage-audit-key", "-n", app),
                 timeout=30, what="the audit signing key")  # fmt: skip
        published = wait_for(
            lambda: kubectl_json(plane, "get", "configmap", "aiguillage-audit-keys", "-n", NS),
            timeout=30, what="the public keys",
        )  # fmt: skip
        assert [name.split(".")[0] for name in published["data"]] == [app]
        assert "Forbidden" not in operator.output()
        assert "forbidden" not in operator.output()

        # The policy keeps the operator's pod patches to the one annotation.
        core = as_operator(plane)

        def patch_as_operator(change: dict[str, Any]) -> str:
            try:
                core.patch_namespaced_pod("web", app, {"metadata": change},
                                          _content_type="application/merge-patch+json")  # fmt: skip
            except ApiException as exc:
                return str(json.loads(exc.body)["message"])
            return ""

        assert "may not change a pod's labels" in patch_as_operator({"labels": {"x": "y"}})
        assert "may change only the annotation aiguillage.dev/outputs-hash" in (
            patch_as_operator({"annotations": {"x": "y"}})
        )
        assert patch_as_operator({"annotations": {"aiguillage.dev/outputs-hash": "v"}}) == ""
    finally:
        operator.stop()
        if original:
            restore_webhooks(plane, original)


def test_upgrade_keeps_the_certificate_and_uninstall_leaves_no_orphans(
    installed: ControlPlane,
) -> None:
    plane = installed
    before = kubectl_json(plane, "get", "secret", f"{NAME}-webhook-tls", "-n", NS)["data"]

    helm(plane, "upgrade", RELEASE, str(CHART), "-n", NS, "--reuse-values",
         "--set", "operator.logLevel=DEBUG")  # fmt: skip

    after = kubectl_json(plane, "get", "secret", f"{NAME}-webhook-tls", "-n", NS)["data"]
    assert after == before
    mutating = kubectl_json(plane, "get", "mutatingwebhookconfiguration", NAME)
    bundles = {h["clientConfig"].get("caBundle") for h in mutating["webhooks"]}
    assert bundles == {before["ca.crt"]}

    helm(plane, "uninstall", RELEASE, "-n", NS, "--wait")

    for kind, name, ns in (
        ("mutatingwebhookconfiguration", NAME, None),
        ("validatingwebhookconfiguration", NAME, None),
        ("validatingadmissionpolicy", f"{NAME}-pod-patches", None),
        ("validatingadmissionpolicybinding", f"{NAME}-pod-patches", None),
        ("clusterrole", NAME, None),
        ("clusterrolebinding", NAME, None),
        ("lease", NAME, NS),
        ("secret", f"{NAME}-webhook-tls", NS),
        ("serviceaccount", NAME, NS),
    ):
        args = ["get", kind, name] + (["-n", ns] if ns else [])
        assert not kubectl_json(plane, *args), f"{kind}/{name} left behind"
    # Kept on purpose (crds.keep): the CRDs, so every route, and the outputs rendered for
    # them, which running sidecars keep serving; and the public audit keys, which auditors
    # need to verify the trails signed so far.
    assert kubectl_json(plane, "get", "crd", "airoutes.aiguillage.dev")
    assert kubectl_json(plane, "get", "airoutes", "-A")["items"]
    assert kubectl_json(plane, "get", "configmap", "aiguillage-audit-keys", "-n", NS)
