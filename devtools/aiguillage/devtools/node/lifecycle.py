"""`Node`: a real single-node Kubernetes cluster on this machine, started and stopped in one call.

What runs: the local control plane (`aiguillage.devtools.controlplane`, here listening on the
node's IP), kube-controller-manager, kube-scheduler, containerd (with runc and the bridge CNI
plugin, from Debian), the kubelet and kube-proxy (iptables mode). Pods get an address on the
``cni0`` bridge (``10.88.0.0/16``) with routes only to the pod subnet and the service range, reach
the API server through the ``kubernetes`` Service, and reach this machine at the bridge's
address (`Node.host_ip`), where tests and ``make dev`` run simulated providers. The API server
reaches webhooks served by pods through their Services (kube-proxy programs the host's own
OUTPUT chain too).

Start and stop::

    with Node(images=[images.ensure("aiguillage")]) as node:
        node.kubectl("apply", "-f", "app.yaml")

`Node.start` takes the machine-wide `NodeLock` first (one node per machine), cleans up after any
earlier node whose owner died, and records the sysctls it will restore. `Node.stop` deletes the
pods (so the kubelet stops them as in any cluster), stops the components, then removes by force
whatever is left (`aiguillage.devtools.node.teardown`) and checks with
`aiguillage.devtools.node.residue` that the machine is as it was. It never raises for a
leftover: it returns them (and logs them), so a test can assert that there are none.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiguillage.devtools import images, pki, spawning
from aiguillage.devtools.cache import cache_root
from aiguillage.devtools.controlplane import ClusterNetwork, ControlPlane, find_k8s_bin
from aiguillage.devtools.kubeclient import write_kubeconfig
from aiguillage.devtools.node import config, containerd, host, netfilter, residue, teardown
from aiguillage.devtools.node.layout import BRIDGE, ROOT_PREFIX, Layout
from aiguillage.devtools.node.lock import DEFAULT_LOCK_PATH, NodeLock
from aiguillage.devtools.started import Started

__all__ = ["Node", "NodeError"]

log = logging.getLogger("aiguillage.devtools.node")

NODE_NAME = "aiguillage-node"


def image_store_dir() -> Path:
    """containerd's image store, kept between nodes in the cache next to the image archives."""
    return cache_root() / "node" / "containerd"


# The identities of the node's components, as the API server's bootstrap RBAC knows them.
_COMPONENT_USERS = {
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kube-proxy": ("system:kube-proxy", None),
    "coredns": (config.COREDNS_USER, None),
}
# Stopped in this order: nothing recreates pods once the controller-manager is gone.
_STOP_ORDER = (
    "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "coredns", "containerd",
)  # fmt: skip


class NodeError(RuntimeError):
    """The node could not start here (the message says why, and what would fix it)."""


class Node(Started):
    """The local single-node cluster. Use it as a context manager, or `start()` and `stop()`."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        images: Sequence[images.ImageArchive] = (),
        log_dir: Path | None = None,
        lock: NodeLock | None = None,
        lock_timeout: float = 1800.0,
        start_timeout: float = 180.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Prepare, but do not start, a node.

        ``images`` are imported into containerd at start (the sandbox image is always
        imported). ``log_dir`` keeps the components' logs after the node is gone (default: in
        its temporary root, removed at stop). ``lock`` is the machine-wide node lock (default
        `DEFAULT_LOCK_PATH`); one the caller already holds is used as is and left held at stop.
        ``lock_timeout`` is how long `start` waits for another node on this machine to stop;
        ``progress`` receives one line per step.
        """
        self._bin_dir = bin_dir
        self._images = list(images)
        self._log_dir = log_dir
        self._lock = lock or NodeLock(DEFAULT_LOCK_PATH)
        self._owns_lock = False
        self._lock_timeout = lock_timeout
        self._start_timeout = start_timeout
        self._progress = progress or (lambda line: log.info("%s", line))
        self._mutex = threading.RLock()
        self._layout: Layout | None = None
        self._plane: ControlPlane | None = None
        self._network: ClusterNetwork | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._before: residue.MachineState | None = None
        self._ports: config.Ports | None = None
        self.timings: dict[str, float] = {}
        """Seconds since `start` began: ``control_plane`` (API server ready),
        ``images_imported``, ``node_ready`` (the node's Ready condition), ``start`` (pods are
        admitted); and ``stop`` (how long the last stop took). Filled in as they happen."""
        self.leftovers: list[str] = []
        """What the last `stop` could not remove (empty after a clean teardown)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every component and wait until the node is Ready and admits pods."""
        with self._mutex:
            if self._layout is not None:
                raise NodeError("node already started")
            bin_dir = self._bin_dir or find_bin_dir()
            reasons = host.preflight(bin_dir)
            if reasons:
                raise NodeError("a node cannot run here: " + "; ".join(reasons))
            assert bin_dir is not None
            if not self._lock.held:
                self._lock.acquire(
                    self._lock_timeout,
                    on_wait=lambda pid: self._progress(
                        f"waiting for the node of PID {pid} to stop (one node per machine) ..."
                    ),
                )
                self._owns_lock = True
            try:
                teardown.sweep_dead_nodes(image_store_dir(), self._progress)
                began = time.monotonic()
                self._before = residue.snapshot()
                layout = Layout(Path(tempfile.mkdtemp(prefix=ROOT_PREFIX)), image_store_dir())
                self._layout = layout
                layout.owner_file.write_text(f"{os.getpid()}\n")
                teardown.MachineRecord.take().save(layout)
                atexit.register(self.stop)
                self._start(bin_dir, layout, began)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> list[str]:
        """Stop the node and remove everything it made; return what could not be removed.

        Safe to call more than once, and after a failed start.
        """
        with self._mutex:
            if self._layout is None:
                self._release_lock()
                return self.leftovers
            began = time.monotonic()
            layout = self._layout
            self._delete_pods()
            for name in _STOP_ORDER:
                if name == "containerd":
                    self._purge_image_store(layout)
                spawning.terminate(self._processes.pop(name, None), 10.0)
            if self._plane is not None:
                self._cleanup_kube_proxy()
            problems = teardown.clean_machine(layout, teardown.MachineRecord.load(layout))
            if self._plane is not None:
                self._plane.stop()
                self._plane = None
            self._layout = None
            atexit.unregister(self.stop)
            if self._before is not None:
                problems += residue.leftovers(self._before, residue.snapshot())
            self.leftovers = sorted(set(problems))
            for problem in self.leftovers:
                log.warning("node teardown left: %s", problem)
            self.timings["stop"] = time.monotonic() - began
            self._release_lock()
            return self.leftovers

    def _release_lock(self) -> None:
        if self._owns_lock:
            self._lock.release()
            self._owns_lock = False

    # -- what tests and make dev use -----------------------------------------------------------

    @property
    def plane(self) -> ControlPlane:
        """The control plane (kube-apiserver and etcd) of this node."""
        if self._plane is None:
            raise NodeError("node not started")
        return self._plane

    @property
    def network(self) -> ClusterNetwork:
        if self._network is None:
            raise NodeError("node not started")
        return self._network

    @property
    def name(self) -> str:
        return NODE_NAME

    @property
    def host_ip(self) -> str:
        """The address pods reach this machine at (the bridge's): serve pods' upstreams there."""
        return config.gateway(self.network)

    @property
    def kubeconfig_path(self) -> Path:
        return self.plane.kubeconfig_path

    @property
    def bin_dir(self) -> Path:
        return self.plane.bin_dir

    @property
    def root(self) -> Path:
        """The node's temporary root directory (containerd, kubelet, CNI state)."""
        if self._layout is None:
            raise NodeError("node not started")
        return self._layout.root

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the node's own processes (control plane included), by component."""
        found = {name: proc.pid for name, proc in self._processes.items()}
        if self._plane is not None:
            for name, pid in (("etcd", self._plane.etcd_pid), ("kube-apiserver",
                              self._plane.apiserver_pid)):  # fmt: skip
                if pid is not None:
                    found[name] = pid
        return found

    def env(self) -> dict[str, str]:
        """``os.environ`` with ``KUBECONFIG`` and the Kubernetes binaries first on ``PATH``."""
        return self.plane.env()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as the cluster's admin (see `ControlPlane.kubectl`)."""
        return self.plane.kubectl(*args, input=input, check=check, timeout=timeout)

    def helm(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """The built helm against this cluster; raises `NodeError` with its output on failure."""
        result = subprocess.run(
            [str(self.bin_dir / "helm"), *args],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise NodeError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def load_image(self, image: images.ImageArchive) -> None:
        """Import an image archive into containerd under its fully qualified name."""
        if self._layout is None:
            raise NodeError("node not started")
        containerd.import_image(self._layout.containerd_socket, image.archive, image.name)

    def serve_from_host(self, namespace: str, name: str, port: int) -> str:
        """Make a server on this machine (listening on `host_ip`:``port``) a Service in the
        cluster, and return its in-cluster URL, ``http://<name>.<namespace>.svc``.

        The Service has no selector; its one endpoint is this machine, so pods reach the
        server by name (the node's CoreDNS) through kube-proxy, as they would reach an
        in-cluster model server. The namespace is created if needed.
        """
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
        }
        endpoints = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.host_ip], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        }
        namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        items = [namespace_doc, service, endpoints]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": items}))  # fmt: skip
        return f"http://{name}.{namespace}.svc"

    def api_get(self, path: str) -> dict[str, Any] | None:
        """``GET path`` on the API server as admin: the JSON body, or None if not found."""
        plane = self.plane
        url = plane.server_url.removeprefix("https://")
        host_, port = url.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host_, int(port), context=self._ssl(), timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        if response.status != 200:
            return None
        data: dict[str, Any] = json.loads(body)
        return data

    # -- start ---------------------------------------------------------------------------------

    def _start(self, bin_dir: Path, layout: Layout, began: float) -> None:
        network = ClusterNetwork(node_ip=host.node_ip())
        self._network = network
        ports = config.Ports(*spawning.free_ports("127.0.0.1", 7))
        sandbox = images.built("pause")
        if sandbox is None:
            raise NodeError("the sandbox (pause) image is not built: run `make images`")
        self._write_files(layout, network, ports, sandbox.name)
        self._progress(f"starting containerd and the control plane on {network.node_ip} ...")
        self._prepare_network(network)
        containerd_argv = ["containerd", f"--config={layout.containerd_config}"]
        self._spawn(layout, "containerd", containerd_argv)
        self._plane = ControlPlane(bin_dir, network=network, start_timeout=self._start_timeout)
        self._plane.start()
        self.timings["control_plane"] = time.monotonic() - began
        self._write_credentials(layout, self._plane)
        self._plane.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": config.COREDNS_RBAC}))  # fmt: skip
        self._spawn(layout, "coredns", config.coredns_argv(bin_dir / "coredns", layout))
        self._wait("containerd", lambda: containerd.ready(layout.containerd_socket))
        if containerd.purge_containers(layout.containerd_socket):
            # A node killed before its stop left containers in the image store; containerd's
            # CRI plugin read them at start: restart it so that the kubelet never sees them.
            spawning.terminate(self._processes.pop("containerd"), 10.0)
            self._spawn(layout, "containerd", containerd_argv)
            self._wait("containerd", lambda: containerd.ready(layout.containerd_socket))
        wanted = [sandbox, *self._images]
        containerd.prune_images(layout.containerd_socket, {image.name for image in wanted})
        self._import_images(layout, [sandbox])
        # The others are imported while the node starts (only sandboxes need one before).
        importing = _Background(self._import_images, layout, self._images, began)
        pki_dir = self._plane.workdir
        self._spawn(layout, "kube-controller-manager", config.controller_manager_argv(
            bin_dir / "kube-controller-manager", layout, pki_dir, ports, network))  # fmt: skip
        self._spawn(layout, "kube-scheduler", config.scheduler_argv(
            bin_dir / "kube-scheduler", layout, ports))  # fmt: skip
        self._spawn(layout, "kubelet", config.kubelet_argv(
            bin_dir / "kubelet", layout, network, NODE_NAME))  # fmt: skip
        self._spawn(layout, "kube-proxy", config.kube_proxy_argv(bin_dir / "kube-proxy", layout))
        self._progress("waiting for the node to be Ready ...")
        self._wait("node Ready", self._node_ready)
        self._wait("CoreDNS", lambda: _http_ok(f"http://127.0.0.1:{ports.coredns_ready}/ready"))
        self.timings["node_ready"] = time.monotonic() - began
        # Pods are admitted once their namespace has a ServiceAccount; the controller-manager
        # creates `default` a few seconds after the node is Ready.
        self._wait(
            "the default ServiceAccount",
            lambda: self.api_get("/api/v1/namespaces/default/serviceaccounts/default"),
        )
        importing.join(self._start_timeout)
        self.timings["start"] = time.monotonic() - began

    def _import_images(
        self, layout: Layout, wanted: Sequence[images.ImageArchive], began: float | None = None
    ) -> None:
        """Import what the image store lacks (an image's name says its content: a digest)."""
        present = set(containerd.image_names(layout.containerd_socket))
        for image in wanted:
            if image.name not in present:
                containerd.import_image(layout.containerd_socket, image.archive, image.name)
        if began is not None:
            self.timings["images_imported"] = time.monotonic() - began

    def _write_files(
        self, layout: Layout, network: ClusterNetwork, ports: config.Ports, sandbox: str
    ) -> None:
        for directory in (layout.containerd_dir, layout.cni_conf_dir, layout.cni_ipam_dir,
                          layout.kubelet_root, layout.pod_logs):  # fmt: skip
            directory.mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(config.containerd_config(layout, sandbox))
        (layout.cni_conf_dir / "10-aiguillage.conflist").write_text(
            config.cni_conflist(layout, network)
        )
        layout.config("kube-proxy.json").write_text(
            config.kube_proxy_config(layout, network, ports, NODE_NAME)
        )
        layout.config("Corefile").write_text(config.corefile(layout, network, ports))
        self._ports = ports

    def _write_credentials(self, layout: Layout, plane: ControlPlane) -> None:
        pki_dir = plane.workdir
        users = {"kubelet": (f"system:node:{NODE_NAME}", "system:nodes"), **_COMPONENT_USERS}
        for component, (user, group) in users.items():
            cert, key = f"{component}.crt", f"{component}.key"
            pki.issue_client_certificate(pki_dir, cert, key, common_name=user, organization=group)
            write_kubeconfig(
                layout.kubeconfig(component),
                server_url=plane.server_url,
                ca_cert=plane.ca_cert_path,
                client_cert=pki_dir / cert,
                client_key=pki_dir / key,
                user=user,
            )
        assert self._ports is not None
        layout.config("kubelet.json").write_text(
            config.kubelet_config(layout, self.network, self._ports, plane.ca_cert_path)
        )

    def _prepare_network(self, network: ClusterNetwork) -> None:
        """The pods' bridge with its gateway address, and the guard keeping packets here.

        The CNI plugin would create the bridge with the first pod; creating it now lets
        host processes listen on `host_ip` before any pod exists.
        """
        prefix = network.pod_cidr.split("/")[1]
        for argv in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{config.gateway(network)}/{prefix}", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise NodeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        netfilter.add_forward_guard(network.pod_cidr, BRIDGE)

    def _spawn(self, layout: Layout, name: str, argv: list[str]) -> None:
        log_dir = self._log_dir or layout.root
        log_dir.mkdir(parents=True, exist_ok=True)
        self._processes[name] = spawning.spawn(name, argv, log_dir)

    def _node_ready(self) -> bool:
        node = self.api_get(f"/api/v1/nodes/{NODE_NAME}")
        conditions = ((node or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _wait(self, what: str, ready: Callable[[], object]) -> None:
        deadline = time.monotonic() + self._start_timeout
        pause = 0.05
        while True:
            for name, proc in self._processes.items():
                code = proc.poll()
                if code is not None:
                    raise NodeError(
                        f"{name} exited with code {code} while waiting for {what}; log tail:\n"
                        f"{spawning.log_tail(self._log_dir or self.root, name)}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"--- {name}:\n{spawning.log_tail(self._log_dir or self.root, name)}"
                    for name in self._processes
                )
                raise NodeError(f"{what} not reached after {self._start_timeout:.0f}s\n{tails}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def _ssl(self) -> ssl.SSLContext:
        context = getattr(self, "_ssl_context", None)
        if context is None:
            context = self.plane.ssl_context()
            self._ssl_context = context
        return context

    # -- stop ----------------------------------------------------------------------------------

    def _delete_pods(self) -> None:
        """Let the kubelet stop every pod as in any cluster (best effort, bounded)."""
        if self._plane is None or "kubelet" not in self._processes:
            return
        spawning.terminate(self._processes.pop("kube-controller-manager", None), 10.0)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._plane.kubectl(
                "delete", "pods", "--all", "--all-namespaces", "--grace-period=1",
                "--timeout=60s", "--ignore-not-found", check=False, timeout=90,
            )  # fmt: skip

    def _purge_image_store(self, layout: Layout) -> None:
        """Leave only images in the store the next node reuses (best effort: the next start
        purges again, and restarts containerd if it had to)."""
        proc = self._processes.get("containerd")
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(containerd.ContainerdError):
                containerd.purge_containers(layout.containerd_socket)

    def _cleanup_kube_proxy(self) -> None:
        """kube-proxy's own clean-up of its iptables (and nftables) state."""
        binary = self.plane.bin_dir / "kube-proxy"
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([str(binary), "--cleanup"], capture_output=True, timeout=60, check=False)


class _Background:
    """A function run in a thread, whose exception `join` re-raises in the caller."""

    def __init__(self, function: Callable[..., None], *args: Any) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                function(*args)
            except BaseException as exc:  # re-raised by join
                self._error = exc

        self._thread = threading.Thread(target=run, name="aiguillage-node-images", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise NodeError(f"importing the images took more than {timeout:.0f}s")
        if self._error is not None:
            raise self._error


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):
        return False


def find_bin_dir() -> Path | None:
    """The Kubernetes binaries directory, or None when they are not built."""
    try:
        return find_k8s_bin()
    except RuntimeError:
        return None
