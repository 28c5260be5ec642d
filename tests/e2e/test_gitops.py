"""What Argo CD would see syncing examples/ (it cannot run here): applying the platform and
team folders server-side twice changes nothing, and ``kubectl diff --server-side`` stays empty
while the operator runs and writes status (no defaulting or operator write makes a synced
Application OutOfSync)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiguillage.devtools.controlplane import ControlPlane
from aiguillage.devtools.waiting import wait_for
from tests.e2e.conftest import start_operator

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOLDERS = [a for f in ("platform", "teams") for a in ("-R", "-f", str(EXAMPLES / f))]
# As Argo CD's ServerSideApply=true sync option does: its own field manager, forcing conflicts.
SSA = ("--server-side", "--field-manager=argocd-controller", "--force-conflicts")


def versions(plane: ControlPlane) -> dict[str, str]:
    """resourceVersion of every object the examples declare."""
    out = plane.kubectl("get", *FOLDERS, "-o", "json").stdout
    items = json.loads(out).get("items") or [json.loads(out)]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in items}  # fmt: skip


def route_ready(plane: ControlPlane, name: str) -> bool:
    out = plane.kubectl("get", "airoute", name, "-n", "support", "-o", "json").stdout
    conditions = json.loads(out).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_synced_examples_stay_in_sync_while_the_operator_runs(
    crds: ControlPlane, tmp_path: Path
) -> None:
    first = crds.kubectl("apply", *SSA, *FOLDERS)
    assert "airoute.aiguillage.dev/summarizer serverside-applied" in first.stdout
    operator = start_operator(crds, "aiguillage-system", tmp_path / "operator.log")
    try:
        wait_for(
            lambda: route_ready(crds, "summarizer") and route_ready(crds, "sovereign-chat"),
            timeout=60,
            what="the operator to report both routes Ready",
        )
        wait_for(
            lambda: crds.kubectl("get", "configmap", "aiguillage-config", "-n", "support",
                                 check=False).returncode == 0,
            timeout=30, what="the namespace's config",
        )  # fmt: skip
        settled = versions(crds)

        crds.kubectl("apply", *SSA, *FOLDERS)
        diff = crds.kubectl("diff", *SSA, *FOLDERS, check=False)

        assert versions(crds) == settled  # the second apply wrote nothing
        assert (diff.returncode, diff.stdout, diff.stderr) == (0, "", "")

        # The check sees drift when there is some: a field of the manifest changed live.
        crds.kubectl("patch", "airoute", "summarizer", "-n", "support", "--type=merge",
                     "-p", '{"spec": {"strategy": "cost"}}')  # fmt: skip
        drift = crds.kubectl("diff", *SSA, *FOLDERS, check=False)
        assert drift.returncode == 1
        assert "-  strategy: cost" in drift.stdout
    finally:
        operator.stop()
        # Not the namespaces: a deleted namespace stays Terminating (no controller-manager).
        crds.kubectl("delete", "--ignore-not-found", "--wait=false", "-R",
                     "-f", str(EXAMPLES / "teams"),
                     "-f", str(EXAMPLES / "platform" / "providers.yaml"),
                     "-f", str(EXAMPLES / "platform" / "secrets.yaml"))  # fmt: skip
