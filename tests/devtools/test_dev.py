"""``make dev`` keeps working in both modes: the demo answers a request through the sidecar.

Process mode is what ``make dev`` falls back to where no node can run; node mode is the
default where one can (tests/devtools/test_dev_node.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aiguillage.devtools.controlplane import find_k8s_bin

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_process_mode_answers_through_the_sidecar_and_stops_cleanly() -> None:
    find_k8s_bin()
    argv = [sys.executable, "-m", "aiguillage.devtools.dev", "--once", "--mode", "process"]
    result = subprocess.run(
        [*argv, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "via provider mistral-eu (FR), attempts 1" in result.stdout
    assert result.stdout.rstrip().endswith("[dev] stopping ...")
    pids = [int(p) for p in (ROOT / ".dev" / "pids").read_text().split()]
    assert len(pids) == 4  # operator, sidecar, etcd, kube-apiserver
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []


def test_where_no_node_can_run_it_says_why_and_uses_processes(tmp_path: Path) -> None:
    """Here: the control plane's binaries are there, the node's (kubelet...) are not."""
    full = find_k8s_bin()
    for name in ("etcd", "kube-apiserver", "kubectl"):
        (tmp_path / name).symlink_to(full / name)
    argv = [sys.executable, "-m", "aiguillage.devtools.dev", "--once"]  # --mode auto
    result = subprocess.run(
        [*argv, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "AIGUILLAGE_K8S_BIN": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"[dev] the local node cannot run here: Kubernetes binaries missing from {tmp_path}: "
        "kube-controller-manager, kube-scheduler, kubelet, kube-proxy, coredns (`make k8s`"
    ), lines[0]
    assert (
        lines[1] == "[dev] falling back to process mode (operator and sidecar as local processes)"
    )
    assert "via provider mistral-eu (FR), attempts 1" in result.stdout
