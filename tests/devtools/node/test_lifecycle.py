"""The local node on this machine: pods reach the API server and Services by name, no packet
leaves the machine, and teardown leaves nothing behind (checked, not assumed)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiguillage.devtools import images
from aiguillage.devtools.demo import RESTRICTED
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.node import Node, residue, teardown
from aiguillage.devtools.node.lifecycle import image_store_dir
from aiguillage.devtools.node.lock import DEFAULT_LOCK_PATH, NodeLock
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for
from tests.conftest import NodeSession

pytestmark = [pytest.mark.e2e, pytest.mark.node]

NODE_SYSCTLS = {
    "net/ipv4/ip_forward": "1",  # the bridge plugin (isGateway)
    "vm/overcommit_memory": "1",  # the kubelet
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}

PROBE = """
import json, os, socket, ssl, urllib.request
out = {}
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
token = open(f"{sa}/token").read()
req = urllib.request.Request(
    f"https://{os.environ['KUBERNETES_SERVICE_HOST']}/version",
    headers={"Authorization": f"Bearer {token}"})
out["version"] = json.loads(urllib.request.urlopen(req, context=ctx, timeout=20).read())
out["routes"] = [l.split()[1] for l in open("/proc/net/route").read().splitlines()[1:]]
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__ + ": " + str(exc)
out["outside"] = connect(os.environ["OUTSIDE_IP"], 443)
try:
    socket.getaddrinfo("example.com", 443)
    out["outside_dns"] = "resolved"
except OSError as exc:
    out["outside_dns"] = type(exc).__name__
url = os.environ.get("HOST_SERVICE_URL")
if url:
    health = urllib.request.urlopen(url + "/_sim/health", timeout=20).read()
    out["host_service"] = json.loads(health)["name"]
print(json.dumps(out))
"""


def run_probe_pod(node: Node, name: str, env: dict[str, str]) -> dict[str, Any]:
    """Run `PROBE` in a pod of the product image (restricted, non-root); return its output."""
    image = images.built("aiguillage")
    assert image is not None
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": image.name,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", PROBE],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }
    node.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def finished() -> str | None:
        got = node.api_get(f"/api/v1/namespaces/default/pods/{name}") or {}
        phase = (got.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        phase = wait_for(finished, timeout=180, interval=0.5, what=f"pod {name} to finish")
        logs = node.kubectl("logs", name, "-n", "default").stdout
        assert phase == "Succeeded", logs
        return dict(json.loads(logs.strip().splitlines()[-1]))
    finally:
        node.kubectl("delete", "pod", name, "-n", "default", "--wait=false", check=False)


def start_sleeper(node: Node, image: str) -> None:
    """A pod that keeps running (its sandbox, shim, veth and cgroups with it) until deleted."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "sleeper",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }
    node.kubectl("apply", "-f", "-", input=json.dumps(pod))
    node.kubectl("wait", "pod/sleeper", "--for=condition=Ready", "--timeout=180s")


def default_gateway() -> str:
    """This machine's next hop to the outside world (what a pod must never reach)."""
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return ".".join(str(b) for b in reversed(bytes.fromhex(fields[2])))
    return "192.0.2.1"  # TEST-NET-1: unroutable anyway


@pytest.fixture
def host_simulator(node: Node) -> Iterator[str]:
    """A simulated provider on this machine, made a Service of the cluster."""
    loop = LoopThread()
    sim = OpenAISimulator("on-the-host", host=node.host_ip)
    loop.run(sim.start())
    port = int(sim.url.rsplit(":", 1)[1])
    try:
        yield node.serve_from_host("host-services", "on-the-host", port)
    finally:
        loop.run(sim.stop())
        loop.close()


def test_pods_reach_the_api_server_and_host_services_and_nothing_beyond(
    node: Node, host_simulator: str
) -> None:
    url = host_simulator
    assert url == "http://on-the-host.host-services.svc"
    began = time.monotonic()
    out = run_probe_pod(
        node, "probe-network", {"OUTSIDE_IP": default_gateway(), "HOST_SERVICE_URL": url}
    )
    NodeSession.timings["first_pod_done"] = time.monotonic() - began
    # Through the `kubernetes` Service (kube-proxy), with the pod's service-account token.
    assert out["version"]["gitVersion"] == "v1.35.4"
    # Routes: the pod subnet (on the link) and the service range, no default route.
    assert sorted(out["routes"]) == ["0000580A", "0000600A"]  # 10.88.0.0, 10.96.0.0
    assert "unreachable" in out["outside"].lower(), out["outside"]
    assert out["outside_dns"] == "gaierror"
    # A server on this machine, by its Service name (the node's CoreDNS, then kube-proxy).
    assert out["host_service"] == "on-the-host"


def test_the_guard_drops_what_pods_would_forward_off_the_machine(node: Node) -> None:
    """Before kube-proxy's accepting rules (filter) get a say: in mangle, evaluated first."""
    rules = subprocess.run(
        ["iptables", "-t", "mangle", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert rules[1] == (
        "-A FORWARD -s 10.88.0.0/16 ! -o cni0 -m comment --comment "
        '"aiguillage-node: pods reach nothing beyond this machine" -j DROP'
    )


def test_components_read_their_configuration_strictly(node_session: NodeSession) -> None:
    """A misspelt field is ignored with a mere info line (lenient decoding): none here."""
    node_session.get()
    for component in ("kubelet", "kube-proxy"):
        log = (node_session.log_dir / f"{component}.log").read_text()
        assert "strict decoding error" not in log, component


@contextlib.contextmanager
def node_left_clean(lock: NodeLock, before: residue.MachineState, **options: Any) -> Iterator[Node]:
    """A node of this test's own, under the lock the test holds; once stopped, the machine
    must be exactly as ``before`` (and the node's own check must agree)."""
    node = Node(lock=lock, **options)
    try:
        node.start()
        yield node
    finally:
        left = node.stop()
        after = residue.snapshot()
    assert left == []
    assert residue.leftovers(before, after) == []


@pytest.mark.own_node
def test_teardown_leaves_nothing(node_session: NodeSession, tmp_path: Path) -> None:
    """Start a node, run a pod, stop: no process, mount, link, chain, cgroup or sysctl left."""
    node_session.stop()  # the session's node, if an earlier test started one
    product = images.ensure("aiguillage", say=False)
    images.ensure("pause", say=False)
    lock = NodeLock(DEFAULT_LOCK_PATH)
    lock.acquire(timeout=1800)  # held across both snapshots: no other node can run meanwhile
    try:
        # A node killed earlier (a CI job cancelled, a session ended) left its bridge, chains and
        # mounts; the next start sweeps them, so take the snapshot after that sweep, not before.
        teardown.sweep_dead_nodes(image_store_dir(), lambda _message: None)
        before = residue.snapshot()
        with node_left_clean(lock, before, images=[product], log_dir=tmp_path) as node:
            pids, root = dict(node.pids), node.root
            start_sleeper(node, product.name)
            busy = " ".join(residue.leftovers(before, residue.snapshot()))
            # The check sees every kind of thing a node makes (so its silence means it),
            # sysctls included: those the kubelet and the bridge plugin set, unless they
            # already had that value.
            changed = [f"sysctl: {path}" for path, value in NODE_SYSCTLS.items()
                       if before.sysctls.get(path) != value]  # fmt: skip
            for made in (
                "process: kubelet",
                "process: containerd-shim-runc-v2",
                "link: cni0",
                "/kubepods",
                "KUBE-SERVICES",
                "mount: ",
                "nfacct object: ",
                *changed,
            ):
                assert made in busy, f"{made!r} not seen while the node runs: {busy}"
    finally:
        lock.release()
    assert [name for name, pid in pids.items() if Path(f"/proc/{pid}").exists()] == []
    assert not root.exists()
    NodeSession.timings["teardown_test_stop"] = node.timings["stop"]


KILLED_OWNER = """
import sys, time
from pathlib import Path
from aiguillage.devtools import images
from aiguillage.devtools.node import Node
from tests.devtools.node.test_lifecycle import start_sleeper
product = images.built("aiguillage")
node = Node(images=[product], log_dir=Path(sys.argv[1]))
node.start()
start_sleeper(node, product.name)
print("running", flush=True)
time.sleep(600)
"""


@pytest.mark.own_node
def test_a_node_whose_owner_was_killed_is_cleaned_up_by_the_next_start(
    node_session: NodeSession, tmp_path: Path
) -> None:
    """SIGKILL leaves shims, pods, mounts, links, chains and cgroups; the next start sweeps."""
    node_session.stop()
    product = images.ensure("aiguillage", say=False)
    lock = NodeLock(DEFAULT_LOCK_PATH)
    lock.acquire(timeout=1800)
    before = residue.snapshot()
    lock.release()
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED_OWNER, str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "running"
    finally:
        owner.kill()
        owner.wait(30)
    lock.acquire(timeout=1800)
    try:
        orphaned = " ".join(residue.leftovers(before, residue.snapshot()))
        for left in ("process: containerd-shim-runc-v2", "link: cni0", "/kubepods"):
            assert left in orphaned, f"{left!r}: the kill left less than expected: {orphaned}"
        # Its start sweeps what the killed owner left; its stop must then leave nothing.
        with node_left_clean(lock, before, images=[product], log_dir=tmp_path / "next"):
            pass
    finally:
        lock.release()
