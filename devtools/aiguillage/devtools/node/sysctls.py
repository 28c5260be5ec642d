"""Kernel settings the node changes, recorded before it starts and put back after it stops.

The kubelet sets ``vm.overcommit_memory``, ``kernel.panic`` and friends when it starts, the CNI
bridge plugin turns ``net.ipv4.ip_forward`` on, kube-proxy may touch conntrack limits. A node on
a developer's machine must leave it as it found it, so `snapshot` reads every writable setting
under the trees those components touch, and `restore` writes back each one that differs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["ROOTS", "VOLATILE", "changed", "restore", "snapshot"]

_PROC_SYS = Path("/proc/sys")

ROOTS = ("net/ipv4", "net/ipv6/conf/all", "net/ipv6/conf/default", "net/bridge",
         "net/netfilter", "net/core", "vm", "kernel")  # fmt: skip
"""Trees of /proc/sys that are snapshotted (per-interface settings vanish with the links)."""

VOLATILE = (
    "kernel/random/",  # entropy and boot id
    "kernel/ns_last_pid",
    "kernel/tainted",
    "kernel/hung_task_",
    "net/ipv4/conf/",  # per interface (all/default are ROOTS of their own in IPv6 only)
    "net/ipv4/neigh/",
    "net/ipv4/route/flush",
    "net/ipv4/tcp_fastopen_key",
    "vm/drop_caches",
    "vm/compact_memory",
    "vm/stat_refresh",
)
"""Settings that change by themselves or exist per link; neither recorded nor restored."""

_FIRST = ("net/ipv4/ip_forward",)
"""Restored first: writing ip_forward resets every interface's forwarding setting."""


def snapshot() -> dict[str, str]:
    """Every readable and writable setting under `ROOTS` (minus `VOLATILE`), by path."""
    values = {}
    for path in _walk():
        with contextlib.suppress(OSError):
            values[path] = (_PROC_SYS / path).read_text().strip()
    return values


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Settings whose value differs: ``{path: (before, after)}`` (missing counts as "")."""
    return {
        path: (before.get(path, ""), after.get(path, ""))
        for path in sorted(set(before) | set(after))
        if before.get(path, "") != after.get(path, "")
    }


def restore(saved: Mapping[str, str]) -> list[str]:
    """Write back each saved setting that differs now; return those that could not be."""
    current = snapshot()
    failed = []
    order = [p for p in _FIRST if p in saved] + [p for p in saved if p not in _FIRST]
    for path in order:
        if current.get(path) == saved[path]:
            continue
        try:
            (_PROC_SYS / path).write_text(saved[path] + "\n")
        except OSError:
            failed.append(path)
    still_different = [p for p in changed(saved, snapshot()) if p in saved and p not in failed]
    return failed + still_different


def _walk() -> Iterator[str]:
    for root in ROOTS:
        base = _PROC_SYS / root
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = os.path.relpath(dirpath, _PROC_SYS)
            dirnames[:] = [d for d in dirnames if not _volatile(f"{rel_dir}/{d}/")]
            for name in filenames:
                path = f"{rel_dir}/{name}"
                full = os.path.join(dirpath, name)
                if _volatile(path) or not os.stat(full).st_mode & 0o200:
                    continue
                yield path


def _volatile(path: str) -> bool:
    return path.startswith(VOLATILE)
