"""The sysctl snapshot covers what the node changes and leaves out what changes by itself."""

from __future__ import annotations

import sys

import pytest

from aiguillage.devtools.node import sysctls

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/sys is Linux")


def test_snapshot_holds_the_settings_the_node_changes() -> None:
    values = sysctls.snapshot()
    # The kubelet, the bridge plugin and kube-proxy change these (see each module's docstring).
    for path in ("net/ipv4/ip_forward", "vm/overcommit_memory", "kernel/panic"):
        assert path in values
    assert not [p for p in values if p.startswith(sysctls.VOLATILE)]


def test_changed_names_each_difference_with_both_values() -> None:
    before = {"net/ipv4/ip_forward": "0", "kernel/panic": "1"}
    after = {"net/ipv4/ip_forward": "1", "kernel/panic": "1", "vm/new": "5"}
    assert sysctls.changed(before, after) == {
        "net/ipv4/ip_forward": ("0", "1"),
        "vm/new": ("", "5"),
    }
