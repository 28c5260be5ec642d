"""The node's components as files and command lines: containerd, CNI, kubelet, kube-proxy,
kube-controller-manager, kube-scheduler and CoreDNS.

Each setting that is not a default was the fix for a real failure on this project's machines
(`LOCAL-CLUSTER.md` in the shared notes); the comments say which. `aiguillage.devtools.node.
lifecycle` writes these files under the node's `Layout` and starts the processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiguillage.devtools.components import ClusterNetwork
from aiguillage.devtools.node.host import CNI_BIN_DIR
from aiguillage.devtools.node.layout import BRIDGE, Layout

__all__ = [
    "COREDNS_RBAC",
    "COREDNS_USER",
    "Ports",
    "cni_conflist",
    "containerd_config",
    "controller_manager_argv",
    "coredns_argv",
    "corefile",
    "kube_proxy_config",
    "kubelet_argv",
    "kubelet_config",
    "scheduler_argv",
]


@dataclass(frozen=True)
class Ports:
    """Free ports picked at start for the node's own endpoints (never the fixed defaults)."""

    kubelet: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    controller_manager: int
    scheduler: int
    coredns_ready: int


def gateway(network: ClusterNetwork) -> str:
    """The pod subnet's gateway: the bridge's address, where pods reach this machine."""
    base = network.pod_cidr.split("/")[0].rsplit(".", 1)[0]
    return f"{base}.1"


def containerd_config(layout: Layout, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2), keeping every file under the node's root."""
    root = layout.containerd_dir
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{root / "state"}"
# Plugins that would write outside the node's root (/opt/containerd) or probe for filesystems
# this machine has not got.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The VM lacks CAP_SYS_RESOURCE: runc fails every sandbox when asked to lower a container's
  # oom_score_adj below its own ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroupfs, like the kubelet (cgroups are v1 here).
        SystemdCgroup = false
        Root = "{root / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    # Debian installs the plugins here, not in /opt/cni/bin.
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(layout: Layout, network: ClusterNetwork) -> str:
    """A bridge network for pods: the pod subnet and the service range routed, nothing else.

    No default route and no masquerading: a pod reaches this machine (the bridge's address,
    the API server through the ``kubernetes`` Service) and other pods, and nothing beyond.
    """
    conflist = {
        "cniVersion": "1.0.0",
        "name": "aiguillage",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),
                    "ranges": [[{"subnet": network.pod_cidr, "gateway": gateway(network)}]],
                    "routes": [{"dst": network.service_cidr}],
                },
            }
        ],
    }
    return json.dumps(conflist, indent=2)


def kubelet_config(layout: Layout, network: ClusterNetwork, ports: Ports, ca_cert: Path) -> str:
    """The KubeletConfiguration (JSON is YAML) of a kubelet on this machine kind."""
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.node_ip,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        # cgroups are v1 (hybrid) here: kubelet 1.35 refuses them unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        # No CAP_SYS_RESOURCE: the kubelet cannot lower its own oom_score_adj.
        "oomScoreAdj": 0,
        "podLogsDir": str(layout.pod_logs),
        # Default /usr/libexec/kubernetes/kubelet-plugins/volume/exec, which it would create.
        "volumePluginDir": str(layout.volume_plugin_dir),
        # The node's CoreDNS, on the bridge's address: Services by name, nothing else. No host
        # resolvers: a lookup of an outside name fails at once rather than leaving the machine.
        "clusterDNS": [gateway(network)],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",
        # A developer's disk is not a production node's: evict only when really full, and keep
        # the images `make images` loaded (they cannot be pulled back).
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
    }
    return json.dumps(config, indent=2)


CLUSTER_DOMAIN = "cluster.local"
COREDNS_USER = "aiguillage:coredns"

COREDNS_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": COREDNS_USER},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": COREDNS_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": COREDNS_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": COREDNS_USER}],
    },
]  # fmt: skip
"""What CoreDNS's kubernetes plugin reads (what kubeadm grants ``system:coredns``)."""


def corefile(layout: Layout, network: ClusterNetwork, ports: Ports) -> str:
    """CoreDNS answering for Services (``<svc>.<ns>.svc.cluster.local``) and nothing else.

    It listens on the bridge's address, where the kubelet points pods (``clusterDNS``); with
    no ``forward`` plugin no query ever leaves the machine (other names get SERVFAIL at once).
    """
    return f""".:53 {{
    bind {gateway(network)}
    errors
    ready 127.0.0.1:{ports.coredns_ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {layout.kubeconfig("coredns")}
    }}
    cache 5
}}
"""


def coredns_argv(coredns: Path, layout: Layout) -> list[str]:
    return [str(coredns), "-conf", str(layout.config("Corefile"))]


def kubelet_argv(
    kubelet: Path, layout: Layout, network: ClusterNetwork, node_name: str
) -> list[str]:
    return [
        str(kubelet),
        f"--config={layout.config('kubelet.json')}",
        f"--kubeconfig={layout.kubeconfig('kubelet')}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_cert_dir}",
        f"--hostname-override={node_name}",
        f"--node-ip={network.node_ip}",
    ]


def kube_proxy_config(layout: Layout, network: ClusterNetwork, ports: Ports, node_name: str) -> str:
    """kube-proxy in iptables mode, leaving the machine's conntrack settings as they are."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "mode": "iptables",
        "clusterCIDR": network.pod_cidr,
        "hostnameOverride": node_name,
        "bindAddress": network.node_ip,
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "nodePortAddresses": [f"{network.node_ip}/32"],
        # 0 = leave the kernel's values alone (kube-proxy would raise nf_conntrack_max).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # No NodePorts on 127.0.0.1: that needs route_localnet, a machine-wide sysctl.
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "0s", "syncPeriod": "30s"},
    }
    return json.dumps(config, indent=2)


def kube_proxy_argv(kube_proxy: Path, layout: Layout) -> list[str]:
    return [str(kube_proxy), f"--config={layout.config('kube-proxy.json')}"]


def controller_manager_argv(
    binary: Path, layout: Layout, pki_dir: Path, ports: Ports, network: ClusterNetwork
) -> list[str]:
    """kube-controller-manager with the keys to sign service-account tokens and certificates."""
    return [
        str(binary),
        f"--kubeconfig={layout.kubeconfig('kube-controller-manager')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--root-ca-file={pki_dir / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki_dir / 'ca.crt'}",
        f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
        f"--service-cluster-ip-range={network.service_cidr}",
        # host-local IPAM hands out pod addresses; no per-node CIDRs to allocate.
        "--allocate-node-cidrs=false",
        f"--flex-volume-plugin-dir={layout.volume_plugin_dir}",
        "--cluster-name=aiguillage",
    ]


def scheduler_argv(binary: Path, layout: Layout, ports: Ports) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={layout.kubeconfig('kube-scheduler')}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
    ]
