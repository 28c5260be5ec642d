"""What the machine must offer before a node can start on it, and the facts the node needs.

`preflight` lists, in plain words, every reason a node cannot run here (not Linux, not root,
a Debian package or a built binary missing, cgroups or kernel features absent); ``make dev``
prints them and falls back to its process mode, and the e2e fixture fails with them.
`node_ip` is the machine's own address, which kube-apiserver listens on and the kubelet
registers.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "CNI_BIN_DIR",
    "NODE_BINARIES",
    "SYSTEM_TOOLS",
    "node_ip",
    "preflight",
]

NODE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "coredns",
)
"""Built by ``make k8s`` (``hack/build-k8s.sh``) from the pinned Go modules."""

SYSTEM_TOOLS = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "ip6tables": "iptables",
    "iptables-save": "iptables",
    "conntrack": "conntrack",
    "nfacct": "nfacct",
    "ip": "iproute2",
}
"""Commands the node runs, and the Debian package each comes from (``make node-deps``)."""

CNI_BIN_DIR = Path("/usr/lib/cni")
"""Where Debian's containernetworking-plugins installs the CNI plugins."""

_CNI_PLUGINS = ("bridge", "host-local", "loopback")
_CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids")


def preflight(bin_dir: Path | None) -> list[str]:
    """Every reason a node cannot start on this machine; empty when it can.

    ``bin_dir`` is where the Kubernetes binaries are (None: not found at all).
    """
    if not sys.platform.startswith("linux"):
        return [f"a node needs Linux (this is {sys.platform})"]
    reasons = []
    if os.geteuid() != 0:
        reasons.append(
            "a node needs root: containerd, the kubelet and kube-proxy mount filesystems, "
            "create network namespaces, links and iptables rules, and manage cgroups"
        )
    missing_tools = sorted(
        {package for tool, package in SYSTEM_TOOLS.items() if _which(tool) is None}
    )
    missing_plugins = [p for p in _CNI_PLUGINS if not (CNI_BIN_DIR / p).is_file()]
    if missing_plugins:
        missing_tools.append("containernetworking-plugins")
    if missing_tools:
        reasons.append(
            f"Debian packages missing: {', '.join(sorted(set(missing_tools)))} "
            "(`make node-deps` installs them)"
        )
    if bin_dir is None:
        reasons.append("Kubernetes binaries not built (`make k8s` builds them)")
    else:
        missing = [b for b in NODE_BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if missing:
            reasons.append(
                f"Kubernetes binaries missing from {bin_dir}: {', '.join(missing)} "
                "(`make k8s` builds them)"
            )
    controllers = _cgroup_controllers()
    absent = [c for c in _CGROUP_CONTROLLERS if c not in controllers]
    if absent:
        reasons.append(f"cgroup controllers not available: {', '.join(absent)}")
    filesystems = _read("/proc/filesystems")
    if "overlay" not in filesystems:
        reasons.append("the kernel has no overlay filesystem (containerd's snapshotter)")
    if not Path("/proc/sys/net/bridge").is_dir():
        reasons.append("the kernel has no bridge netfilter (net/bridge sysctls are missing)")
    try:
        node_ip()
    except RuntimeError as exc:
        reasons.append(str(exc))
    return reasons


def node_ip() -> str:
    """The machine's own IPv4 address: the source of its default route, else its first global one.

    Only routing tables are read; no packet is sent. Raises RuntimeError when there is none.
    """
    # The route to any public address (1.1.1.1 here) names the default route's source address.
    route = _run_ip("-4", "route", "get", "1.1.1.1").split()
    if "src" in route:
        return route[route.index("src") + 1]
    for line in _run_ip("-4", "-o", "addr", "show", "scope", "global").splitlines():
        words = line.split()
        if "inet" in words:
            address = words[words.index("inet") + 1].split("/")[0]
            if not ipaddress.ip_address(address).is_loopback:
                return address
    raise RuntimeError(
        "no IPv4 address to give the node: this machine has no default route and no global "
        "IPv4 address (`ip -4 addr`)"
    )


def _run_ip(*args: str) -> str:
    try:
        return subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return ""


def _which(tool: str) -> str | None:
    # Debian puts iptables, ip and runc in /usr/sbin, which a non-login root PATH may lack.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(tool, path=path)


def _cgroup_controllers() -> set[str]:
    found: set[str] = set()
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        fstype, _source, options = [*fields[1].split(), "", "", ""][:3]
        if fstype == "cgroup":
            found.update(options.split(","))
        elif fstype == "cgroup2":
            mount_point = fields[0].split()[4]
            found.update(_read(f"{mount_point}/cgroup.controllers").split())
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
