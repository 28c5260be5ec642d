"""Removing everything a node put on the machine, whether it stopped well or was killed.

`clean_machine` is the brute-force half of a node's stop, and all of the clean-up of a node
whose owner died (SIGKILL, power loss of a terminal...): its components died with their owner
(PR_SET_PDEATHSIG) but containerd's shims and the pods' processes did not, and mounts, links,
iptables chains, cgroups and sysctls stay until someone removes them. Every step is idempotent
and works from the node's root directory and its recorded `MachineRecord` alone, so the next
start can clean up after a run it knows nothing else about. The order matters: processes
first (a busy mount or cgroup cannot go), then mounts (network namespaces die with them, and
their veths with them), then links, iptables, cgroups, sysctls and files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools.node import netfilter, residue, sysctls
from aiguillage.devtools.node.layout import BRIDGE, HARD_CODED_PATHS, ROOT_PREFIX, Layout

__all__ = ["MachineRecord", "clean_machine", "sweep_dead_nodes"]

log = logging.getLogger("aiguillage.devtools.node")

_MNT_DETACH = 2  # from <sys/mount.h>


@dataclass(frozen=True)
class MachineRecord:
    """What the machine was like before the node started: what teardown restores."""

    sysctls: dict[str, str]
    paths: dict[str, list[str] | None]
    accounting: list[str]

    @classmethod
    def take(cls) -> MachineRecord:
        paths = {}
        for path in HARD_CODED_PATHS:
            entries = residue.path_entries(path)
            paths[str(path)] = sorted(entries) if entries is not None else None
        accounting = sorted(netfilter.accounting_objects())
        return cls(sysctls=sysctls.snapshot(), paths=paths, accounting=accounting)

    def save(self, layout: Layout) -> None:
        data = {"sysctls": self.sysctls, "paths": self.paths, "accounting": self.accounting}
        layout.state_file.write_text(json.dumps(data))

    @classmethod
    def load(cls, layout: Layout) -> MachineRecord | None:
        try:
            data = json.loads(layout.state_file.read_text())
        except (OSError, ValueError):
            return None
        return cls(
            sysctls=dict(data["sysctls"]),
            paths=dict(data["paths"]),
            accounting=list(data["accounting"]),
        )


def clean_machine(layout: Layout, record: MachineRecord | None) -> list[str]:
    """Remove what the node under ``layout`` left; return the problems met (empty: all gone).

    ``record`` (None if the node died before writing it) says which sysctls to restore and
    which entries of the hard-coded paths existed before.
    """
    problems: list[str] = []
    problems += _kill_node_processes(layout)
    problems += _unmount(layout)
    problems += _remove_links()
    problems += [f"iptables rules left in {t}" for t in netfilter.remove_node_rules()]
    if record is not None:  # counters are global: delete only those that appeared meanwhile
        made = netfilter.accounting_objects() - set(record.accounting)
        problems += [f"nfacct object {n} left" for n in netfilter.delete_accounting_objects(made)]
    problems += _remove_cgroups()
    if record is not None:
        problems += [f"sysctl {path} not restored" for path in sysctls.restore(record.sysctls)]
    problems += _remove_new_entries(record)
    problems += _remove_tree(layout.root)
    return problems


def _kill_node_processes(layout: Layout, timeout: float = 20.0) -> list[str]:
    """SIGKILL every process of the node: pods' processes (in ``kubepods``), shims, components.

    A process is the node's when it runs in a ``kubepods`` cgroup or its command line names
    the node's root (containerd's shims name its socket there).
    """
    root = str(layout.root).encode()
    deadline = time.monotonic() + timeout
    while True:
        pids = _pids_in(residue.kubepods_cgroups()) | _pids_mentioning(root)
        pids.discard(os.getpid())
        if not pids:
            return []
        if time.monotonic() > deadline:
            return [f"process {pid} survived SIGKILL" for pid in sorted(pids)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _pids_in(cgroups: list[Path]) -> set[int]:
    pids: set[int] = set()
    for cgroup in cgroups:
        for dirpath, _dirnames, filenames in os.walk(cgroup):
            if "cgroup.procs" in filenames:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def _pids_mentioning(text: bytes) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
    return pids


def _unmount(layout: Layout) -> list[str]:
    """Detach every mount under the node's root and the runtime's hard-coded directories."""
    paths = [layout.root, *HARD_CODED_PATHS, *([layout.image_store] if layout.image_store else [])]
    prefixes = tuple(_prefix(p) for p in paths)
    libc = ctypes.CDLL(None, use_errno=True)
    for _attempt in range(5):
        points = [p for p in residue.mount_points() if p.startswith(prefixes)]
        if not points:
            return []
        for point in sorted(points, key=len, reverse=True):  # the deepest first
            libc.umount2(point.encode(), _MNT_DETACH)
    left = [p for p in residue.mount_points() if p.startswith(prefixes)]
    return [f"mount {p} could not be detached" for p in left]


def _prefix(path: Path) -> str:
    # mountinfo shows resolved paths (/var/run is a link to /run on Debian).
    return os.path.realpath(path) + "/"


def _remove_tree(path: Path) -> list[str]:
    """rm -r ``path``, unless something is still mounted under it (rm would follow the mount
    into, say, a hostPath volume's directory and delete the machine's own files)."""
    if not path.exists():
        return []
    mounted = [m for m in residue.mount_points() if m.startswith(_prefix(path))]
    if mounted:
        return [f"{path} kept: still mounted under it: {', '.join(mounted)}"]
    shutil.rmtree(path, ignore_errors=True)
    return [f"{path} could not be removed"] if path.exists() else []


def _remove_links() -> list[str]:
    """Delete the bridge's remaining veths and the bridge itself."""
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        return []
    for veth in Path(f"/sys/class/net/{BRIDGE}/brif").iterdir():
        _ip("link", "delete", veth.name)
    _ip("link", "delete", BRIDGE)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        return [f"link {BRIDGE} could not be deleted"]
    return []


def _remove_cgroups() -> list[str]:
    """rmdir the ``kubepods`` trees, the deepest first (an empty cgroup is removed by rmdir)."""
    problems = []
    for top in residue.kubepods_cgroups():
        for dirpath, _dirnames, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError as exc:
                problems.append(f"cgroup {dirpath}: {exc.strerror}")
    return problems


def _remove_new_entries(record: MachineRecord | None) -> list[str]:
    """Remove what the components created in the paths they hard-code, and nothing else."""
    if record is None:  # the node died before starting any component: nothing was created
        return []
    problems = []
    for path in HARD_CODED_PATHS:
        known = record.paths.get(str(path))
        if known is None:
            problems += _remove_tree(path)
            continue
        keep = set(known)
        current = residue.path_entries(path) or frozenset()
        for entry in sorted(current - keep, key=len, reverse=True):
            target = path / entry
            if target.is_dir() and not target.is_symlink():
                problems += _remove_tree(target)
            else:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        if (residue.path_entries(path) or frozenset()) - keep:
            problems.append(f"{path}: new entries could not be removed")
    return problems


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)


def sweep_dead_nodes(image_store: Path, progress: Callable[[str], None]) -> None:
    """Clean up after nodes whose owner died without stopping them (call with the lock held)."""
    for path in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
        layout = Layout(path, image_store)
        try:
            owner = int(layout.owner_file.read_text())
        except (OSError, ValueError):
            owner = None
        if owner is not None and owner != os.getpid() and _alive(owner):
            continue  # cannot happen with the lock held, unless it was taken by hand
        progress(f"cleaning up after a node left by PID {owner} ({path}) ...")
        problems = clean_machine(layout, MachineRecord.load(layout))
        for problem in problems:
            log.warning("cleaning up %s: %s", path, problem)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
