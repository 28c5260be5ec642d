"""A real, throw-away Kubernetes control plane on loopback, the way envtest runs one.

`ControlPlane` starts the pinned ``etcd`` and ``kube-apiserver`` binaries (built from their
Go modules by ``make k8s``, see ``hack/build-k8s.sh``) as local processes, with no
controller-manager, scheduler or kubelet. It is what the end-to-end tests and ``make dev`` talk
to: CRDs, custom resources, RBAC and admission all behave as on a real cluster, but nothing
ever runs a pod.

What it sets up, all inside a fresh temporary directory that `stop()` removes:

* a self-made CA (made with ``cryptography``), a serving certificate for kube-apiserver, a
  client certificate for the admin user (``CN=aiguillage-admin, O=system:masters``) and an RSA
  key pair for signing service-account tokens;
* etcd on free loopback ports, with fsync off (data is disposable);
* kube-apiserver on a free loopback port with RBAC on and the ``ServiceAccount`` admission
  plugin off (there is no token controller, so that plugin would reject every pod);
* a kubeconfig for the admin user (`ControlPlane.kubeconfig_path`).

Consequences of having no controller-manager: namespaces exist but hold no ``default``
ServiceAccount, deleted namespaces stay ``Terminating`` forever, and nothing reconciles
Deployments, ReplicaSets, Jobs or garbage collection.

Given a `ClusterNetwork` (``ControlPlane(network=...)``), kube-apiserver is set up to serve a
real node instead: it listens on the node's IP, which its certificate names along with the
``kubernetes`` Service's ClusterIP, and the node's kubelets, controllers and pods reach it there
(see `aiguillage.devtools.node`). etcd stays on loopback either way.

Each process runs in its own session (process group) with its output in a log file in the
temporary directory. `stop()` is idempotent and is also registered with `atexit`; on Linux the
processes additionally get ``PR_SET_PDEATHSIG`` so that they die with the Python process even if
it is killed without running ``atexit`` handlers (the next `start()` then removes the temporary
directory such a process left behind).

This module holds the orchestration (what runs, with which flags, when it counts as ready) and
the public API; the parts live next to it: `aiguillage.devtools.pki` generates the
credentials, `aiguillage.devtools.components` holds the flags and readiness probes of etcd and
kube-apiserver, `aiguillage.devtools.spawning` runs and stops their processes, and
`aiguillage.devtools.kubeclient` writes the kubeconfig and runs kubectl.

Typical use::

    with ControlPlane() as cp:
        cp.kubectl("apply", "-f", "-", input=manifest)
        subprocess.run([...], env=cp.env(), check=True)
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiguillage.devtools import components, pki, spawning
from aiguillage.devtools.cache import cache_root
from aiguillage.devtools.components import SERVICE_CLUSTER_IP_RANGE, ClusterNetwork
from aiguillage.devtools.kubeclient import KubectlError, run_kubectl, write_kubeconfig
from aiguillage.devtools.started import Started

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "BIN_DIR_ENV",
    "K8S_VERSION",
    "ClusterNetwork",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "find_k8s_bin",
]

K8S_VERSION = "v1.35.4"
"""Version of kube-apiserver and kubectl pinned in ``hack/build-k8s.sh``."""

BIN_DIR_ENV = "AIGUILLAGE_K8S_BIN"
"""Environment variable naming the directory holding the built binaries."""

ADMIN_USER = "aiguillage-admin"
ADMIN_GROUP = "system:masters"

_REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kubectl")
_LOOPBACK = "127.0.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, or a process of it died."""


class _PortInUseError(ControlPlaneError):
    """A process lost the race for a port picked as free; retried with fresh ports."""


def find_k8s_bin() -> Path:
    """Return the directory holding the ``etcd``, ``kube-apiserver`` and ``kubectl`` binaries.

    It is ``$AIGUILLAGE_K8S_BIN`` if set, else the cache directory ``hack/build-k8s.sh`` builds
    into (``${AIGUILLAGE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/aiguillage}/bin-v1.35.4``).
    Raises `ControlPlaneError` telling to run ``make k8s`` if a binary is missing.
    """
    configured = os.environ.get(BIN_DIR_ENV)
    if configured:
        bin_dir = Path(configured).expanduser()
        origin = f"${BIN_DIR_ENV}"
    else:
        bin_dir = cache_root() / f"bin-{K8S_VERSION}"
        origin = "the default cache directory"
    missing = [
        name
        for name in _REQUIRED_BINARIES
        if not (bin_dir / name).is_file() or not os.access(bin_dir / name, os.X_OK)
    ]
    if missing:
        raise ControlPlaneError(
            f"Kubernetes binaries missing from {bin_dir} ({origin}): {', '.join(missing)}. "
            f"Run `make k8s` to build them, then set {BIN_DIR_ENV} to the directory it prints."
        )
    return bin_dir.resolve()


class ControlPlane(Started):
    """etcd plus kube-apiserver on loopback, with an admin kubeconfig.

    Use it as a context manager, or call `start()` and `stop()`. After `stop()` it can be
    started again (with a new temporary directory, new ports and empty storage).
    """

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        extra_apiserver_args: Sequence[str] = (),
        network: ClusterNetwork | None = None,
    ) -> None:
        """Prepare, but do not start, a control plane.

        ``bin_dir`` defaults to `find_k8s_bin()`. ``start_timeout`` bounds each wait for a
        process to become ready; ``stop_timeout`` is how long a process gets after SIGTERM
        before SIGKILL. ``extra_apiserver_args`` are appended to the kube-apiserver command
        line; an extra ``--flag=value`` replaces the default for ``--flag``. ``network`` makes
        kube-apiserver serve a node on ``network.node_ip`` (see the module docstring).
        """
        self._bin_dir = bin_dir.resolve() if bin_dir is not None else find_k8s_bin()
        self._network = network
        self._host = network.node_ip if network is not None else _LOOPBACK
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._extra_apiserver_args = tuple(extra_apiserver_args)
        self._lock = threading.RLock()
        self._workdir: Path | None = None
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._etcd_port = 0
        self._etcd_peer_port = 0
        self._apiserver_port = 0
        self._admin_ssl: ssl.SSLContext | None = None
        self._start_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Generate credentials, start etcd and kube-apiserver, and wait until the API serves."""
        with self._lock:
            if self._workdir is not None:
                raise ControlPlaneError("control plane already started")
            began = time.monotonic()
            spawning.sweep_stale_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=spawning.WORKDIR_PREFIX))
            (self._workdir / spawning.OWNER_FILE).write_text(f"{os.getpid()}\n")
            atexit.register(self.stop)
            try:
                self._write_credentials()
                self._admin_ssl = self.ssl_context()
                for attempt in range(3):
                    self._pick_ports()
                    self._write_kubeconfig()
                    try:
                        # kube-apiserver retries etcd until it answers: starting both at once
                        # saves the time etcd takes to come up.
                        self._spawn_etcd()
                        self._spawn_apiserver()
                        self._wait_etcd_ready()
                        self._wait_apiserver_ready()
                    except _PortInUseError:
                        self._terminate_all()
                        if attempt == 2:
                            raise
                        continue
                    break
            except BaseException:
                self.stop()
                raise
            self._start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, and remove the temporary directory.

        Safe to call more than once, and when `start()` failed half-way.
        """
        with self._lock:
            self._terminate_all()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._admin_ssl = None
            atexit.unregister(self.stop)

    def stop_apiserver(self) -> None:
        """Stop only kube-apiserver (etcd keeps the data); see `start_apiserver()`."""
        with self._lock:
            self._require_started()
            spawning.terminate(self._apiserver, self._stop_timeout)
            self._apiserver = None

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on the same port and etcd, and wait until it serves."""
        with self._lock:
            self._require_started()
            if self._apiserver is not None and self._apiserver.poll() is None:
                raise ControlPlaneError("kube-apiserver is already running")
            if self._etcd is None or self._etcd.poll() is not None:
                raise ControlPlaneError("etcd is not running")
            self._spawn_apiserver()
            self._wait_apiserver_ready()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver only (same port, same etcd, so data is kept)."""
        with self._lock:
            self.stop_apiserver()
            self.start_apiserver()

    # -- public helpers ----------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        """Directory holding the Kubernetes binaries in use."""
        return self._bin_dir

    @property
    def workdir(self) -> Path:
        """Temporary directory with credentials, etcd data, logs and the kubeconfig."""
        return self._require_started()

    @property
    def kubeconfig_path(self) -> Path:
        """Kubeconfig for the admin user (client certificate, ``system:masters``)."""
        return self.workdir / ".kubeconfig"

    @property
    def server_url(self) -> str:
        """HTTPS URL of kube-apiserver, e.g. ``https://127.0.0.1:43211``."""
        self._require_started()
        return f"https://{self._host}:{self._apiserver_port}"

    @property
    def network(self) -> ClusterNetwork | None:
        """The node network kube-apiserver serves, or None when it serves no node."""
        return self._network

    @property
    def etcd_url(self) -> str:
        """Client URL of etcd."""
        self._require_started()
        return f"http://{_LOOPBACK}:{self._etcd_port}"

    @property
    def ca_cert_path(self) -> Path:
        """PEM certificate of the CA that signed the serving and client certificates."""
        return self.workdir / pki.CA_CERT

    @property
    def admin_cert_path(self) -> Path:
        """PEM client certificate of the admin user."""
        return self.workdir / pki.ADMIN_CERT

    @property
    def admin_key_path(self) -> Path:
        """PEM private key of the admin user."""
        return self.workdir / pki.ADMIN_KEY

    @property
    def etcd_log_path(self) -> Path:
        """Stdout and stderr of etcd."""
        return spawning.log_path(self.workdir, "etcd")

    @property
    def apiserver_log_path(self) -> Path:
        """Stdout and stderr of kube-apiserver (appended to across restarts)."""
        return spawning.log_path(self.workdir, "kube-apiserver")

    @property
    def etcd_pid(self) -> int | None:
        """PID (and process group id) of etcd, or None when not running."""
        return self._etcd.pid if self._etcd is not None else None

    @property
    def apiserver_pid(self) -> int | None:
        """PID (and process group id) of kube-apiserver, or None when not running."""
        return self._apiserver.pid if self._apiserver is not None else None

    @property
    def start_seconds(self) -> float | None:
        """How long the last `start()` took, or None if it never completed."""
        return self._start_seconds

    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """An SSL context trusting the control plane's CA, presenting the admin cert if asked."""
        context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        if client_cert:
            context.load_cert_chain(self.admin_cert_path, self.admin_key_path)
        return context

    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``KUBECONFIG``, with the binary directory first on ``PATH``."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig_path)
        env["PATH"] = os.pathsep.join(p for p in (str(self._bin_dir), env.get("PATH")) if p)
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this control plane as the admin user.

        Output is captured as text. With ``check``, a non-zero exit raises `KubectlError`
        (whose message includes stderr).
        """
        return run_kubectl(
            self._bin_dir / "kubectl",
            self.kubeconfig_path,
            args,
            input=input,
            check=check,
            timeout=timeout,
        )

    # -- credentials -------------------------------------------------------------------------

    def _write_credentials(self) -> None:
        workdir = self._require_started()
        service_range = self._network.service_cidr if self._network else SERVICE_CLUSTER_IP_RANGE
        serving_ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
            ipaddress.ip_address(_LOOPBACK),
            ipaddress.ip_address("::1"),
            # The `kubernetes` Service's ClusterIP: pods connect to it by that address.
            ipaddress.ip_address(str(next(ipaddress.ip_network(service_range).hosts()))),
        ]
        if self._network is not None:
            serving_ips.append(ipaddress.ip_address(self._network.node_ip))
        pki.write_credentials(
            workdir, admin_user=ADMIN_USER, admin_group=ADMIN_GROUP, serving_ips=serving_ips
        )
        if self._network is not None:
            # kube-apiserver's own identity towards kubelets (logs, exec, port-forward).
            pki.issue_client_certificate(
                workdir,
                components.APISERVER_KUBELET_CLIENT_CERT,
                components.APISERVER_KUBELET_CLIENT_KEY,
                common_name="kube-apiserver-kubelet-client",
                organization=ADMIN_GROUP,
            )

    def _write_kubeconfig(self) -> None:
        write_kubeconfig(
            self.kubeconfig_path,
            server_url=self.server_url,
            ca_cert=self.ca_cert_path,
            client_cert=self.admin_cert_path,
            client_key=self.admin_key_path,
            user=ADMIN_USER,
        )

    # -- processes ---------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        self._etcd_port, self._etcd_peer_port = spawning.free_ports(_LOOPBACK, 2)
        (self._apiserver_port,) = spawning.free_ports(self._host, 1)

    def _spawn_etcd(self) -> None:
        workdir = self._require_started()
        data_dir = workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)  # a previous attempt lost a port race
        argv = components.etcd_argv(
            self._bin_dir / "etcd",
            data_dir,
            host=_LOOPBACK,
            client_port=self._etcd_port,
            peer_port=self._etcd_peer_port,
        )
        self._etcd = spawning.spawn("etcd", argv, workdir)

    def _wait_etcd_ready(self) -> None:
        url = f"http://{_LOOPBACK}:{self._etcd_port}/health"
        self._wait_for("etcd", lambda: components.etcd_healthy(url))

    def _spawn_apiserver(self) -> None:
        workdir = self._require_started()
        argv = components.apiserver_argv(
            self._bin_dir / "kube-apiserver",
            workdir,
            host=self._host,
            port=self._apiserver_port,
            etcd_host=_LOOPBACK,
            etcd_port=self._etcd_port,
            network=self._network,
            extra=self._extra_apiserver_args,
        )
        self._apiserver = spawning.spawn("kube-apiserver", argv, workdir)

    def _wait_apiserver_ready(self) -> None:
        context = self._admin_ssl
        assert context is not None

        def status(path: str) -> int:
            return components.apiserver_status(self._host, self._apiserver_port, context, path)

        # /readyz covers etcd, the RBAC bootstrap roles and the other post-start hooks; the
        # `default` namespace comes from a bootstrap controller that may lag behind.
        self._wait_for("kube-apiserver", lambda: status("/readyz") == 200)
        self._wait_for(
            "kube-apiserver (namespace default)",
            lambda: status("/api/v1/namespaces/default") == 200,
        )

    def _wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until true; fail early with a log tail if a process exits."""
        deadline = time.monotonic() + self._start_timeout
        pause = 0.02
        while True:
            for name, proc in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)):
                code = proc.poll() if proc is not None else None
                if code is not None:
                    tail = self._log_tail(name)
                    error = (
                        _PortInUseError if "address already in use" in tail else ControlPlaneError
                    )
                    raise error(
                        f"{name} exited with code {code} while waiting for {what}; "
                        f"log tail:\n{tail}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{what} not ready after {self._start_timeout:.0f}s; "
                    f"kube-apiserver log tail:\n{self._log_tail('kube-apiserver')}\n"
                    f"etcd log tail:\n{self._log_tail('etcd')}"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    def _log_tail(self, log_name: str) -> str:
        return spawning.log_tail(self._require_started(), log_name)

    def _terminate_all(self) -> None:
        # kube-apiserver first: it would otherwise spin retrying a vanished etcd.
        spawning.terminate(self._apiserver, self._stop_timeout)
        self._apiserver = None
        spawning.terminate(self._etcd, self._stop_timeout)
        self._etcd = None

    def _require_started(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane not started")
        return self._workdir
