"""What a node leaves behind is named, in words, and nothing else is."""

from __future__ import annotations

from pathlib import Path

from aiguillage.devtools.node.residue import MachineState, leftovers, path_entries


def state(**changes: object) -> MachineState:
    fields: dict[str, object] = {
        "processes": frozenset(),
        "mounts": frozenset({"/", "/proc"}),
        "links": frozenset({"lo", "eth0"}),
        "netfilter": frozenset(),
        "accounting": frozenset(),
        "cgroups": frozenset(),
        "sysctls": {"net/ipv4/ip_forward": "0", "kernel/panic": "1"},
        "paths": {"/run/containerd": None, "/var/lib": frozenset({"apt"})},
    }
    fields.update(changes)
    return MachineState(**fields)  # type: ignore[arg-type]


def test_a_clean_machine_has_no_leftovers() -> None:
    assert leftovers(state(), state()) == []


def test_every_kind_of_leftover_is_named() -> None:
    after = state(
        processes=frozenset({"containerd-shim-runc-v2 (pid 42)"}),
        mounts=frozenset({"/", "/proc", "/run/netns/cni-1"}),
        links=frozenset({"lo", "eth0", "cni0", "veth1234"}),
        netfilter=frozenset({"iptables nat chain KUBE-SERVICES"}),
        accounting=frozenset({"ct_state_invalid_dropped_pkts"}),
        cgroups=frozenset({"/sys/fs/cgroup/memory/kubepods"}),
        sysctls={"net/ipv4/ip_forward": "1", "kernel/panic": "1"},
        paths={"/run/containerd": frozenset({"s"}), "/var/lib": frozenset({"apt", "cni"})},
    )
    assert leftovers(state(), after) == [
        "process: containerd-shim-runc-v2 (pid 42)",
        "mount: /run/netns/cni-1",
        "link: cni0",
        "link: veth1234",
        "iptables: iptables nat chain KUBE-SERVICES",
        "nfacct object: ct_state_invalid_dropped_pkts",
        "cgroup: /sys/fs/cgroup/memory/kubepods",
        "sysctl: net/ipv4/ip_forward was '0', is '1'",
        "path: /run/containerd (did not exist)",
        "path: cni",
    ]


def test_what_went_away_is_not_a_leftover() -> None:
    before = state(links=frozenset({"lo", "eth0", "docker0"}))
    assert leftovers(before, state()) == []


def test_path_entries_lists_the_whole_tree(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "file").write_text("x")
    (tmp_path / "top").write_text("x")
    assert path_entries(tmp_path) == {"a", "a/b", "a/b/c", "a/b/c/file", "top"}
    assert path_entries(tmp_path / "missing") is None
