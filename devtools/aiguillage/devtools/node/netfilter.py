"""The node's iptables state: the guard that keeps pods' packets on this machine, and cleanup.

The node adds one rule of its own: in the ``mangle`` table's ``FORWARD`` chain, anything from
the pod subnet that is not going out through the pods' bridge is dropped, so a pod can reach
this machine and other pods but never a network beyond it (pods also get no default route;
this is the second lock). ``mangle`` is traversed before ``filter``, where kube-proxy puts its
own rules first and accepts, among others, Service traffic DNATed to any endpoint: a Service
whose endpoint is outside this machine would otherwise be a way out.
kube-proxy and the kubelet add their ``KUBE-*`` chains and the CNI plugins ``CNI-*`` chains;
`remove_node_rules` deletes all of them, and the jumps to them, from IPv4 and IPv6 tables in
one ``iptables-restore`` per table. kube-proxy also creates named packet counters (``nfacct``
objects such as ``ct_state_invalid_dropped_pkts``) that outlive its rules;
`delete_accounting_objects` removes those the node made, so that nothing of it stays in the
kernel.
"""

from __future__ import annotations

import re
import subprocess

__all__ = [
    "GUARD_COMMENT",
    "accounting_objects",
    "add_forward_guard",
    "delete_accounting_objects",
    "remove_node_rules",
    "rules",
]

GUARD_COMMENT = "aiguillage-node: pods reach nothing beyond this machine"
_OUR_CHAIN_PREFIXES = ("KUBE-", "CNI-")
_FAMILIES = ("iptables", "ip6tables")
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def add_forward_guard(pod_cidr: str, bridge: str) -> None:
    """Drop forwarded packets from ``pod_cidr`` unless they leave through ``bridge``."""
    _iptables(
        "iptables", "-t", "mangle", "-I", "FORWARD", "1", "-s", pod_cidr, "!", "-o", bridge,
        "-m", "comment", "--comment", GUARD_COMMENT, "-j", "DROP",
    )  # fmt: skip


def rules() -> dict[str, list[str]]:
    """``iptables-save`` and ``ip6tables-save`` output without counters, by family."""
    return {
        family: [
            _COUNTERS.sub("", line).rstrip()
            for line in _save(family).splitlines()
            if line and not line.startswith("#")
        ]
        for family in _FAMILIES
    }


def remove_node_rules() -> list[str]:
    """Delete the ``KUBE-*`` and ``CNI-*`` chains, every jump to them, and the guard rule.

    Returns the ``family/table`` pairs still holding some of them (empty when all went).
    """
    for _attempt in range(3):  # a component still running could change a table meanwhile
        pending = {family: _removal_scripts(_save(family)) for family in _FAMILIES}
        if not any(pending.values()):
            return []
        for family, scripts in pending.items():
            for script in scripts.values():
                subprocess.run(
                    [f"{family}-restore", "-w", "--noflush"],
                    input=script, text=True, capture_output=True, check=False, timeout=60,
                )  # fmt: skip
    return [
        f"{family}/{table}" for family in _FAMILIES for table in _removal_scripts(_save(family))
    ]


def accounting_objects() -> set[str]:
    """Names of the kernel's nfacct counters (empty if the ``nfacct`` tool is missing)."""
    try:
        out = subprocess.run(
            ["nfacct", "list"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
    except OSError:
        return set()
    # Each line: { pkts = 000..., bytes = 000... } = NAME;
    return {line.rsplit("=", 1)[1].strip(" ;") for line in out.splitlines() if "=" in line}


def delete_accounting_objects(names: set[str]) -> list[str]:
    """Delete the named nfacct counters; return those still there (e.g. still in a rule)."""
    for name in names:
        subprocess.run(["nfacct", "delete", name], capture_output=True, check=False, timeout=30)
    return sorted(names & accounting_objects())


def _removal_scripts(saved: str) -> dict[str, str]:
    """For each table holding node rules, an ``iptables-restore --noflush`` script removing them."""
    scripts = {}
    table = ""
    deletions: list[str] = []
    chains: list[str] = []
    for line in saved.splitlines():
        if line.startswith("*"):
            table, deletions, chains = line[1:], [], []
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(_OUR_CHAIN_PREFIXES):
                chains.append(name)
        elif line.startswith("-A "):
            chain = line.split()[1]
            target = _target(line)
            ours = chain.startswith(_OUR_CHAIN_PREFIXES)
            if not ours and (target.startswith(_OUR_CHAIN_PREFIXES) or GUARD_COMMENT in line):
                deletions.append("-D " + line[3:])
        elif line == "COMMIT" and (deletions or chains):
            body = deletions + [f"-F {c}" for c in chains] + [f"-X {c}" for c in chains]
            scripts[table] = "\n".join([f"*{table}", *body, "COMMIT", ""])
    return scripts


def _target(rule: str) -> str:
    words = rule.split()
    for flag in ("-j", "-g"):
        if flag in words and words.index(flag) + 1 < len(words):
            return words[words.index(flag) + 1]
    return ""


def _save(family: str) -> str:
    result = subprocess.run(
        [f"{family}-save"], capture_output=True, text=True, check=False, timeout=60
    )
    return result.stdout


def _iptables(family: str, *args: str, check: bool = True) -> None:
    result = subprocess.run(
        [family, "-w", *args], capture_output=True, text=True, check=False, timeout=60
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{family} {' '.join(args)} failed: {result.stderr.strip()}")
