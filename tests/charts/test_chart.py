"""The Helm chart rendered offline: lint, each variant of values, clear failures on bad values,
the same webhook configurations the operator builds, and a server-side dry run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiguillage.devtools.controlplane import ControlPlane, find_k8s_bin
from aiguillage.operator.webhookconfig import (
    AdmissionPolicy,
    mutating_configuration,
    validating_configuration,
)

pytestmark = pytest.mark.e2e  # needs helm, built with the control-plane binaries
CHART = Path(__file__).resolve().parents[2] / "charts" / "aiguillage"
NS = "aiguillage-system"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_k8s_bin() / "helm"), *args], capture_output=True, text=True, timeout=60
    )


def render(*sets: str, api_versions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    args += [a for v in api_versions for a in ("--api-versions", v)]
    result = helm("template", "aig", str(CHART), "-n", NS, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(str(d["kind"]) for d in docs)


def test_lint() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_everything_injection_needs() -> None:
    assert kinds(render()) == sorted(
        [
            "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount",
            "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
            "Deployment", "PodDisruptionBudget", "Lease", "NetworkPolicy",
            "Secret", "Service", "Service",
            "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        ]
    )  # fmt: skip


def test_two_replicas_elect_a_leader_and_a_budget_keeps_one_up() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "--leader-elect" in args
    assert "--leader-election-lease=aig-aiguillage" in args
    assert one(docs, "Lease")["metadata"]["name"] == "aig-aiguillage"
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "PodDisruptionBudget" not in kinds(render("operator.replicas=1"))


def test_the_operator_runs_as_a_numeric_user_with_its_own_identity() -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}

    assert pod["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # kopf asks getpass for a user name unless POD_ID names the operator.
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_sidecar_image_and_resources_come_from_values() -> None:
    container = one(
        render(
            "image.repository=registry.local/aiguillage",
            "image.tag=1.2.3",
            "image.pullPolicy=Never",
            "injection.sidecar.resources.requests.cpu=10m",
            "injection.sidecar.port=4100",
        ),
        "Deployment",
    )["spec"]["template"]["spec"]["containers"][0]

    assert container["image"] == "registry.local/aiguillage:1.2.3"
    assert "--sidecar-image=registry.local/aiguillage:1.2.3" in container["args"]
    assert "--sidecar-image-pull-policy=Never" in container["args"]
    assert "--sidecar-port=4100" in container["args"]
    resources = next(a for a in container["args"] if a.startswith("--sidecar-resources="))
    assert json.loads(resources.split("=", 1)[1]) == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }


def _as_service(config: dict[str, Any]) -> dict[str, Any]:
    """The chart's webhooks with the CA bundle left out (generated at each render)."""
    for hook in config["webhooks"]:
        hook["clientConfig"].pop("caBundle", None)
    return config["webhooks"]


def test_the_chart_renders_the_webhook_configurations_the_operator_builds() -> None:
    docs = render()
    service = {"service": {"name": "aig-aiguillage-webhook", "namespace": NS, "port": 443}}
    policy = AdmissionPolicy(operator_namespace=NS)

    assert (
        _as_service(one(docs, "MutatingWebhookConfiguration"))
        == (mutating_configuration(service, policy)["webhooks"])
    )
    assert (
        _as_service(one(docs, "ValidatingWebhookConfiguration"))
        == (validating_configuration(service, policy)["webhooks"])
    )


def test_injection_can_be_turned_off_and_fail_open() -> None:
    off = render("injection.enabled=false")
    assert "MutatingWebhookConfiguration" not in kinds(off)
    assert not any(a.startswith("--sidecar") for a in one(off, "Deployment")["spec"]["template"][
        "spec"]["containers"][0]["args"])  # fmt: skip

    ignore = one(render("injection.failurePolicy=Ignore"), "MutatingWebhookConfiguration")
    assert {h["failurePolicy"] for h in ignore["webhooks"]} == {"Ignore"}


def test_crds_can_be_left_out_and_webhooks_turned_off() -> None:
    found = set(kinds(render("crds.enabled=false", "webhook.enabled=false",
                             "injection.enabled=false")))  # fmt: skip
    assert not found & {
        "CustomResourceDefinition",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }


def test_cert_manager_issues_from_a_ca_of_its_own() -> None:
    docs = render("webhook.certificate.source=cert-manager", api_versions=("cert-manager.io/v1",))

    assert "Secret" not in kinds(docs)
    serving = one(docs, "Certificate", "aig-aiguillage-webhook")
    assert serving["spec"]["issuerRef"] == {"name": "aig-aiguillage-webhook-ca"}
    assert one(docs, "Certificate", "aig-aiguillage-webhook-ca")["spec"]["isCA"] is True
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = one(docs, kind)
        annotation = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert annotation == f"{NS}/aig-aiguillage-webhook"
        assert all("caBundle" not in h["clientConfig"] for h in config["webhooks"])


def test_service_monitor_and_network_policy() -> None:
    docs = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
        api_versions=("monitoring.coreos.com/v1",),
    )
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]] == [9443, 8081]
    assert "NetworkPolicy" not in kinds(render("networkPolicy.enabled=false"))


def test_excluded_namespaces_always_include_the_release_namespace() -> None:
    config = one(
        render("injection.excludedNamespaces={kube-system}"), "MutatingWebhookConfiguration"
    )
    for hook in config["webhooks"]:
        names = hook["namespaceSelector"]["matchExpressions"][1]
        assert names == {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [NS, "kube-system"],
        }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("operator.replicas=0", "at '/operator/replicas': minimum: got 0, want 1"),
        ("webhook.failurePolicy=Maybe", "at '/webhook/failurePolicy': value must be one of"),
        (
            "injection.failurePolicy=Sometimes",
            "at '/injection/failurePolicy': value must be one of",
        ),
        ("injection.sidecar.runAsUser=0", "at '/injection/sidecar/runAsUser': minimum: got 0"),
        (
            "webhook.certificate.source=cert-manager",
            "webhook.certificate.source=cert-manager needs cert-manager (cert-manager.io/v1)",
        ),
        (
            "webhook.enabled=false",
            "injection.enabled=true needs webhook.enabled=true",
        ),
        (
            "injection.sidecar.healthPort=4000",
            "injection.sidecar.port and injection.sidecar.healthPort must differ",
        ),
        (
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.enabled=true needs the Prometheus Operator CRDs",
        ),
    ],
)
def test_bad_values_fail_with_a_clear_message(value: str, message: str) -> None:
    result = helm("template", "aig", str(CHART), "--set", value)
    assert result.returncode != 0
    assert message in result.stderr


def test_argocd_health_checks_ship_the_tested_scripts() -> None:
    cm = one(render("argocd.healthChecks=true"), "ConfigMap")
    for kind in ("AIRoute", "AIProvider"):
        script = (
            CHART / "resource_customizations" / "aiguillage.dev" / kind / "health.lua"
        ).read_text()
        assert cm["data"][f"resource.customizations.health.aiguillage.dev_{kind}"].strip() == (
            script.strip()
        )


def test_rendered_chart_is_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    result = helm("template", "aig", str(CHART), "-n", "default")
    assert result.returncode == 0
    applied = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", "default", "-f", "-", input=result.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    for created in (
        "validatingwebhookconfiguration.admissionregistration.k8s.io/aig-aiguillage",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/aig-aiguillage",
        "validatingadmissionpolicy.admissionregistration.k8s.io/aig-aiguillage-pod-patches",
        "lease.coordination.k8s.io/aig-aiguillage",
    ):
        assert created in applied.stdout
