"""The Helm chart: lints, renders for each certificate source, fails clearly on bad values,
and what it renders is accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from aiguillage.devtools.controlplane import ControlPlane, find_k8s_bin

pytestmark = pytest.mark.e2e  # needs helm, built with the control-plane binaries
CHART = Path(__file__).resolve().parents[2] / "charts" / "aiguillage"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_k8s_bin() / "helm"), *args], capture_output=True, text=True, timeout=60
    )


def render(*sets: str) -> list[dict[str, object]]:
    args = [a for s in sets for a in ("--set", s)]
    result = helm("template", "aig", str(CHART), "-n", "aiguillage-system", *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_lint() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_operator_webhook_and_crds() -> None:
    kinds = sorted(str(d["kind"]) for d in render())
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )


def test_crds_can_be_left_out_and_webhook_turned_off() -> None:
    kinds = {str(d["kind"]) for d in render("crds.enabled=false", "webhook.enabled=false")}
    assert "CustomResourceDefinition" not in kinds
    assert "ValidatingWebhookConfiguration" not in kinds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("operator.replicas=2", "at '/operator/replicas': maximum: got 2, want 1"),
        ("webhook.failurePolicy=Maybe", "at '/webhook/failurePolicy': value must be one of"),
        (
            "webhook.certificate.source=cert-manager",
            "webhook.certificate.source=cert-manager needs cert-manager (cert-manager.io/v1)",
        ),
    ],
)
def test_bad_values_fail_with_a_clear_message(value: str, message: str) -> None:
    result = helm("template", "aig", str(CHART), "--set", value)
    assert result.returncode != 0
    assert message in result.stderr


def test_argocd_health_checks_ship_the_tested_script() -> None:
    docs = render("argocd.healthChecks=true")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    data = cm["data"]
    assert isinstance(data, dict)
    script = (CHART / "files" / "argocd" / "health.lua").read_text()
    assert data["resource.customizations.health.aiguillage.dev_AIRoute"].strip() == script.strip()


def test_rendered_chart_is_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    result = helm("template", "aig", str(CHART), "-n", "default")
    assert result.returncode == 0
    applied = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", "default", "-f", "-", input=result.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/aig-aiguillage" in (
        applied.stdout
    )
