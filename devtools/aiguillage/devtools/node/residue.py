"""What a node leaves on the machine: a snapshot to take before it starts and compare after.

`snapshot` records everything a node could leave behind: its kind of processes, mounts,
network links, iptables rules and chains, ``kubepods`` cgroups, sysctls, and the entries of
the paths its components hard-code. `leftovers` names every difference, in words; a teardown
is clean when it finds none. The node's stop, the e2e test of teardown and a user wondering
what a killed run left can all call it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools.node import netfilter, sysctls
from aiguillage.devtools.node.layout import HARD_CODED_PATHS

__all__ = [
    "NODE_PROCESS_NAMES",
    "MachineState",
    "cgroup_mounts",
    "kubepods_cgroups",
    "leftovers",
    "mount_points",
    "node_processes",
    "path_entries",
    "snapshot",
]

NODE_PROCESS_NAMES = frozenset(
    {
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "runc",
        "kubelet",
        "kube-proxy",
        "kube-controller-manager",
        "kube-scheduler",
        "coredns",
        "pause",
    }
)
"""Programs only a node runs on this machine (one node at a time: see `lock`)."""

DEFAULT_PATHS = (
    Path("/etc/cni"), Path("/etc/containerd"), Path("/etc/kubernetes"), Path("/opt/cni"),
    Path("/opt/containerd"), Path("/usr/libexec/kubernetes"), Path("/var/lib/containerd"),
    Path("/var/lib/kubelet"), Path("/var/lib/kube-proxy"), Path("/var/log/pods"),
    Path("/run/kubernetes"),
)  # fmt: skip
"""Where Kubernetes components, containerd and CNI write by default; the node points each
elsewhere, and a forgotten default shows up here (the kubelet's flex-volume directory under
/usr/libexec and its pod logs under /var/log/pods were found this way)."""

_BUILTIN_CHAINS = frozenset({"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"})


@dataclass(frozen=True)
class MachineState:
    """The parts of the machine a node touches, at one moment."""

    processes: frozenset[str]
    mounts: frozenset[str]
    links: frozenset[str]
    netfilter: frozenset[str]
    accounting: frozenset[str]
    cgroups: frozenset[str]
    sysctls: dict[str, str]
    paths: dict[str, frozenset[str] | None]


def snapshot() -> MachineState:
    """The machine as it is now (takes well under a second)."""
    return MachineState(
        processes=frozenset(f"{name} (pid {pid})" for pid, name in node_processes()),
        mounts=frozenset(mount_points()),
        links=frozenset(_links()),
        netfilter=frozenset(_netfilter_lines()),
        accounting=frozenset(netfilter.accounting_objects()),
        cgroups=frozenset(str(p) for p in kubepods_cgroups()),
        sysctls=sysctls.snapshot(),
        paths={
            **{str(path): path_entries(path) for path in HARD_CODED_PATHS},
            **{str(path): path_entries(path) for path in DEFAULT_PATHS},
        },
    )


def leftovers(before: MachineState, after: MachineState) -> list[str]:
    """Everything ``after`` has that ``before`` had not (and sysctls that differ), in words."""
    found: list[str] = []

    def new(kind: str, old: Iterable[str], now: Iterable[str]) -> None:
        found.extend(f"{kind}: {item}" for item in sorted(set(now) - set(old)))

    new("process", before.processes, after.processes)
    new("mount", before.mounts, after.mounts)
    new("link", before.links, after.links)
    new("iptables", before.netfilter, after.netfilter)
    new("nfacct object", before.accounting, after.accounting)
    new("cgroup", before.cgroups, after.cgroups)
    found.extend(
        f"sysctl: {path} was {old!r}, is {now!r}"
        for path, (old, now) in sysctls.changed(before.sysctls, after.sysctls).items()
    )
    for path, entries in after.paths.items():
        previous = before.paths.get(path)
        if entries is not None and previous is None:
            found.append(f"path: {path} (did not exist)")
        elif entries is not None and previous is not None:
            new("path", previous, entries)
    return found


def node_processes() -> list[tuple[int, str]]:
    """``(pid, name)`` of every running process whose program is one of `NODE_PROCESS_NAMES`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = Path(os.readlink(entry / "exe")).name
        except OSError:  # exited meanwhile, or a kernel thread
            continue
        name = name.removesuffix(" (deleted)")
        if name in NODE_PROCESS_NAMES:
            found.append((int(entry.name), name))
    return found


def cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy."""
    mounts = []
    for line in _mountinfo():
        left, _, right = line.partition(" - ")
        if right.split()[:1] in (["cgroup"], ["cgroup2"]):
            mounts.append(Path(_unescape(left.split()[4])))
    return mounts


def kubepods_cgroups() -> list[Path]:
    """The kubelet's ``kubepods`` cgroup in every hierarchy where one exists."""
    return [m / "kubepods" for m in cgroup_mounts() if (m / "kubepods").is_dir()]


def path_entries(path: Path) -> frozenset[str] | None:
    """Every file and directory under ``path`` (relative), or None if it does not exist."""
    if not path.exists():
        return None
    entries = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entries.add(os.path.relpath(os.path.join(dirpath, name), path))
    return frozenset(entries)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace (the one the node's components share)."""
    return [_unescape(line.split()[4]) for line in _mountinfo()]


def _mountinfo() -> list[str]:
    try:
        return Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []


def _unescape(field: str) -> str:
    """mountinfo escapes spaces and the like as octal (``\\040``)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _links() -> list[str]:
    return [entry.name for entry in Path("/sys/class/net").iterdir()]


def _netfilter_lines() -> list[str]:
    """Rules and user-defined chains, by family and table (builtin chains' policies aside)."""
    lines = []
    for family, saved in netfilter.rules().items():
        table = ""
        for line in saved:
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and line[1:].split()[0] not in _BUILTIN_CHAINS:
                lines.append(f"{family} {table} chain {line[1:].split()[0]}")
            elif line.startswith("-A "):
                lines.append(f"{family} {table} {line}")
    return lines
