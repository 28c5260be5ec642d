"""Preflight says, in words, what keeps a node from running here and what fixes it."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import pytest

from aiguillage.devtools.node import host

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_unbuilt_binaries_point_at_make_k8s(tmp_path: Path) -> None:
    (tmp_path / "kubelet").write_text("")  # present but not executable
    reasons = host.preflight(tmp_path)
    [binaries] = [r for r in reasons if "Kubernetes binaries" in r]
    assert "kubelet" in binaries
    assert "coredns" in binaries
    assert "`make k8s`" in binaries
    assert any("not built" in r for r in host.preflight(None))


def test_node_ip_is_the_machines_own_ipv4_address() -> None:
    address = ipaddress.ip_address(host.node_ip())
    assert address.version == 4
    assert not address.is_loopback
