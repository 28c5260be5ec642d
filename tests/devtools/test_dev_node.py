"""``make dev`` on the local node: the chart, the examples and the demo app in a pod, answers
printed with the provider that served them, and nothing left once it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiguillage.devtools import dev_node, images
from tests.conftest import NodeSession

ROOT = Path(__file__).resolve().parents[2]


def test_example_providers_are_pointed_at_the_given_endpoints() -> None:
    documents = dev_node.example_documents({"mistral-eu": "http://mistral-eu.sims.svc/v1"})
    providers = {d["metadata"]["name"]: d for d in documents if d["kind"] == "AIProvider"}
    assert providers["mistral-eu"]["spec"]["endpoint"] == "http://mistral-eu.sims.svc/v1"
    assert providers["openai-us"]["spec"]["endpoint"] != "http://mistral-eu.sims.svc/v1"
    kinds = [d["kind"] for d in documents]
    assert set(kinds) >= {"Namespace", "Secret", "AIProvider", "AIRoute"}
    assert kinds.index("AIRoute") > kinds.index("AIProvider") > kinds.index("Namespace")


def test_the_chart_is_given_the_built_image() -> None:
    image = images.ImageArchive("aiguillage", "localhost/aiguillage:0123", Path("x"), "0123", 0)
    values = dev_node.chart_image_values(image)
    assert values[1].endswith("image.repository=localhost/aiguillage")
    assert values[3].endswith("image.tag=0123")
    assert values[5].endswith("image.pullPolicy=Never")


@pytest.mark.e2e
@pytest.mark.node
@pytest.mark.own_node
def test_make_dev_on_the_node_prints_answers_and_leaves_nothing(
    node_session: NodeSession,
) -> None:
    node_session.require_node_support()
    node_session.stop()  # one node per machine: make dev starts its own
    result = subprocess.run(
        [sys.executable, "-m", "aiguillage.devtools.dev", "--once", "--mode", "node"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "[dev] node Ready in " in out
    assert "(sidecar injected by the operator)" in out
    assert 'summarizer: "Hello from mistral-eu (simulated, FR)' in out
    assert "via provider mistral-eu (FR), attempts 1" in out
    assert 'sovereign-chat: "Hello from mistral-eu (simulated, FR)' in out
    assert "[dev] first answers " in out
    assert out.rstrip().endswith("nothing left behind"), out
    pids = [int(p) for p in (ROOT / ".dev" / "pids").read_text().split()]
    # etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
    # containerd, CoreDNS
    assert len(pids) == 8
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
