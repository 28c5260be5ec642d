"""The node's component files keep everything under the node's root and carry the settings
that were each the fix for a real failure on this machine kind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aiguillage.devtools.components import ClusterNetwork
from aiguillage.devtools.node import config
from aiguillage.devtools.node.host import CNI_BIN_DIR
from aiguillage.devtools.node.layout import Layout

ROOT = Path("/tmp/aiguillage-node-test")
NETWORK = ClusterNetwork(node_ip="192.0.2.2")
PORTS = config.Ports(10250, 10248, 10256, 10249, 10257, 10259, 8181)
CA = Path("/tmp/aiguillage-cp-test/ca.crt")


@pytest.fixture
def layout() -> Layout:
    return Layout(ROOT)


def absolute_paths(text: str) -> list[str]:
    """Absolute paths in ``text``, comments (``# ...``) aside."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return re.findall(r"(?<![\w.:])/(?:[\w.-]+/?)+", code)


def test_every_path_the_components_write_is_under_the_root(layout: Layout) -> None:
    files = [
        config.containerd_config(layout, "localhost/aiguillage-pause:1"),
        config.cni_conflist(layout, NETWORK),
        config.kubelet_config(layout, NETWORK, PORTS, CA),
        config.kube_proxy_config(layout, NETWORK, PORTS, "n1"),
        config.corefile(layout, NETWORK, PORTS),
        " ".join(config.kubelet_argv(Path("/bin/kubelet"), layout, NETWORK, "n1")[1:]),
        " ".join(config.scheduler_argv(Path("/bin/s"), layout, PORTS)[1:]),
    ]
    read_only = {str(CNI_BIN_DIR), str(CA)}  # read, never written
    for text in files:
        for path in absolute_paths(text):
            if path.rstrip("/") in read_only:
                continue
            assert path.startswith(f"{ROOT}/"), f"{path} is outside the node's root in:\n{text}"


def test_containerd_keeps_runc_from_lowering_oom_scores_and_names_the_sandbox(
    layout: Layout,
) -> None:
    text = config.containerd_config(layout, "localhost/aiguillage-pause:abc")
    assert "restrict_oom_score_adj = true" in text  # no CAP_SYS_RESOURCE in this VM
    assert 'sandbox_image = "localhost/aiguillage-pause:abc"' in text
    assert "SystemdCgroup = false" in text
    assert f'bin_dir = "{CNI_BIN_DIR}"' in text
    assert '"io.containerd.internal.v1.opt"' in text  # would create /opt/containerd


def test_pods_get_routes_to_the_pod_subnet_and_services_only(layout: Layout) -> None:
    bridge = json.loads(config.cni_conflist(layout, NETWORK))["plugins"][0]
    assert bridge["isDefaultGateway"] is False
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == [{"dst": "10.96.0.0/12"}]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]
    assert config.gateway(NETWORK) == "10.88.0.1"


def test_kubelet_runs_on_cgroup_v1_without_oom_rights_and_resolves_only_services(
    layout: Layout,
) -> None:
    kubelet = json.loads(config.kubelet_config(layout, NETWORK, PORTS, CA))
    assert kubelet["failCgroupV1"] is False
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["failSwapOn"] is False
    assert kubelet["clusterDNS"] == ["10.88.0.1"]
    assert kubelet["resolvConf"] == ""
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["readOnlyPort"] == 0


def test_kube_proxy_leaves_conntrack_and_route_localnet_alone(layout: Layout) -> None:
    proxy = json.loads(config.kube_proxy_config(layout, NETWORK, PORTS, "n1"))
    assert proxy["mode"] == "iptables"
    assert set(proxy["conntrack"].values()) == {0, "0s"}
    assert proxy["iptables"]["localhostNodePorts"] is False
    assert proxy["nodePortAddresses"] == ["192.0.2.2/32"]


def test_cluster_dns_never_forwards_a_query_off_the_machine(layout: Layout) -> None:
    corefile = config.corefile(layout, NETWORK, PORTS)
    assert "forward" not in corefile
    assert "bind 10.88.0.1" in corefile
    assert "kubernetes cluster.local" in corefile
