"""Every CRD schema and CEL rule, on the real API server: a YAML fixture per mistake,
paired with the exact messages a user sees from ``kubectl apply``."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.controlplane import ControlPlane

pytestmark = pytest.mark.e2e
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "invalid").glob("*.yaml"))


def expected(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_rejected_with_exact_message(
    crds: ControlPlane, kube_namespace: str, fixture: Path
) -> None:
    result = crds.kubectl("apply", "-n", kube_namespace, "-f", str(fixture), check=False)
    assert result.returncode != 0, f"{fixture.name} was accepted"
    messages = [
        line.removeprefix("* ").strip()
        for line in result.stderr.splitlines()
        if line.startswith("* ") or ": Invalid value" in line
    ]
    for want in expected(fixture):
        assert any(m.endswith(want) for m in messages), f"{want!r} not in {result.stderr}"


def test_valid_examples_are_accepted(crds: ControlPlane) -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    # Not the namespaces: a namespace deleted here stays Terminating (no controller-manager).
    files = [root / "platform" / "secrets.yaml", root / "platform" / "providers.yaml",
             root / "teams"]  # fmt: skip
    args = [a for f in files for a in ("-R", "-f", str(f))]
    crds.kubectl("apply", "-f", str(root / "platform" / "namespaces.yaml"))
    try:
        result = crds.kubectl("apply", *args, check=False)
        assert result.returncode == 0, result.stderr
        assert "airoute.aiguillage.dev/sovereign-chat created" in result.stdout
    finally:
        crds.kubectl("delete", "--ignore-not-found", "--wait=false", *args)
