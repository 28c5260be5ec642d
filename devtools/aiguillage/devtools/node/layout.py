"""Where a node keeps its files: one temporary root per node, nothing in the machine's defaults.

Every component gets its state under the root (containerd's state and its own socket, the
kubelet's ``--root-dir`` and ``--cert-dir``, the CNI configuration and IP allocations, pod
logs), so a node never reads or writes ``/var/lib/containerd``, ``/var/lib/kubelet``,
``/etc/cni`` or ``/var/lib/cni/networks``. The one thing kept from a node to the next is
containerd's image store (``image_store``, in the cache next to the image archives, like a
real node's image cache): importing and unpacking the images was most of a warm start; the
node empties it of containers at every stop and start. The few paths the components
hard-code (`HARD_CODED_PATHS`) are handled by `aiguillage.devtools.node.teardown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BRIDGE", "HARD_CODED_PATHS", "ROOT_PREFIX", "Layout"]

ROOT_PREFIX = "aiguillage-node-"
"""Prefix of a node's temporary root (the next start sweeps those whose owner died)."""

BRIDGE = "cni0"
"""The Linux bridge the pods' veths plug into; it holds the pod subnet's gateway address."""

HARD_CODED_PATHS = (
    Path("/run/containerd"),  # containerd's shims put their sockets under /run/containerd/s
    Path("/var/run/netns"),  # containerd's CRI plugin mounts pod network namespaces here
    Path("/var/lib/cni"),  # libcni caches each attachment's result here
    Path("/var/log/containers"),  # the kubelet links container logs here
)
"""Paths the node's components use whatever they are told; emptied of the node's entries."""


@dataclass(frozen=True)
class Layout:
    """The paths under one node's root directory."""

    root: Path
    image_store: Path | None = None
    """containerd's ``root`` (content, snapshots, metadata), kept across nodes; None: under
    `root`, removed with it."""

    @property
    def containerd_root(self) -> Path:
        return self.image_store or self.containerd_dir / "root"

    @property
    def owner_file(self) -> Path:
        return self.root / "owner.pid"

    @property
    def state_file(self) -> Path:
        """What the node changed on the machine (sysctls, paths) so teardown can undo it."""
        return self.root / "machine-state.json"

    @property
    def containerd_dir(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_cert_dir(self) -> Path:
        return self.root / "kubelet-pki"

    @property
    def volume_plugin_dir(self) -> Path:
        return self.root / "volume-plugins"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    def config(self, name: str) -> Path:
        """A component's configuration file (``kubelet.json``, ``kube-proxy.json``...)."""
        return self.root / name

    def kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"
