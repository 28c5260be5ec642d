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

Each process runs in its own session (process group) with its output in a log file in the
temporary directory. `stop()` is idempotent and is also registered with `atexit`; on Linux the
processes additionally get ``PR_SET_PDEATHSIG`` so that they die with the Python process even if
it is killed without running ``atexit`` handlers (the next `start()` then removes the temporary
directory such a process left behind).

Typical use::

    with ControlPlane() as cp:
        cp.kubectl("apply", "-f", "-", input=manifest)
        subprocess.run([...], env=cp.env(), check=True)
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "BIN_DIR_ENV",
    "K8S_VERSION",
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

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"

_REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kubectl")
_LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LOG_TAIL_LINES = 40
_WORKDIR_PREFIX = "aiguillage-cp-"
_OWNER_FILE = "owner.pid"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, or a process of it died."""


class KubectlError(subprocess.CalledProcessError):
    """`ControlPlane.kubectl` failed; unlike its base class, the message includes stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


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
        cache = os.environ.get("AIGUILLAGE_CACHE")
        if cache:
            cache_dir = Path(cache).expanduser()
        else:
            xdg = os.environ.get("XDG_CACHE_HOME")
            cache_dir = (Path(xdg) if xdg else Path.home() / ".cache") / "aiguillage"
        bin_dir = cache_dir / f"bin-{K8S_VERSION}"
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


class ControlPlane:
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
    ) -> None:
        """Prepare, but do not start, a control plane.

        ``bin_dir`` defaults to `find_k8s_bin()`. ``start_timeout`` bounds each wait for a
        process to become ready; ``stop_timeout`` is how long a process gets after SIGTERM
        before SIGKILL. ``extra_apiserver_args`` are appended to the kube-apiserver command
        line; an extra ``--flag=value`` replaces the default for ``--flag``.
        """
        self._bin_dir = bin_dir.resolve() if bin_dir is not None else find_k8s_bin()
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Generate credentials, start etcd and kube-apiserver, and wait until the API serves."""
        with self._lock:
            if self._workdir is not None:
                raise ControlPlaneError("control plane already started")
            began = time.monotonic()
            _sweep_stale_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self._workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
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
            self._terminate(self._apiserver)
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
        return f"https://{_LOOPBACK}:{self._apiserver_port}"

    @property
    def etcd_url(self) -> str:
        """Client URL of etcd."""
        self._require_started()
        return f"http://{_LOOPBACK}:{self._etcd_port}"

    @property
    def ca_cert_path(self) -> Path:
        """PEM certificate of the CA that signed the serving and client certificates."""
        return self.workdir / "ca.crt"

    @property
    def admin_cert_path(self) -> Path:
        """PEM client certificate of the admin user."""
        return self.workdir / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        """PEM private key of the admin user."""
        return self.workdir / "admin.key"

    @property
    def etcd_log_path(self) -> Path:
        """Stdout and stderr of etcd."""
        return self.workdir / "etcd.log"

    @property
    def apiserver_log_path(self) -> Path:
        """Stdout and stderr of kube-apiserver (appended to across restarts)."""
        return self.workdir / "kube-apiserver.log"

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
        argv = [str(self._bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig_path), *args]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    # -- credentials -------------------------------------------------------------------------

    def _write_credentials(self) -> None:
        workdir = self._require_started()
        now = datetime.datetime.now(datetime.UTC)
        not_before = now - datetime.timedelta(hours=1)
        not_after = now + datetime.timedelta(days=365)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiguillage-dev-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(
            subject: x509.Name,
            usage: x509.ObjectIdentifier,
            sans: list[x509.GeneralName],
        ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                    critical=False,
                )
            )
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return key, builder.sign(ca_key, hashes.SHA256())

        service_ip = next(ipaddress.IPv4Network(SERVICE_CLUSTER_IP_RANGE).hosts())
        serving_key, serving_cert = leaf(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"),
                x509.IPAddress(ipaddress.ip_address(_LOOPBACK)),
                x509.IPAddress(ipaddress.ip_address("::1")),
                x509.IPAddress(service_ip),
            ],
        )
        admin_key, admin_cert = leaf(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                    x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
                ]
            ),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            [],
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        _write_pem(workdir / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_pem(workdir / "ca.key", _private_pem(ca_key), private=True)
        _write_pem(workdir / "apiserver.crt", serving_cert.public_bytes(serialization.Encoding.PEM))
        _write_pem(workdir / "apiserver.key", _private_pem(serving_key), private=True)
        _write_pem(workdir / "admin.crt", admin_cert.public_bytes(serialization.Encoding.PEM))
        _write_pem(workdir / "admin.key", _private_pem(admin_key), private=True)
        _write_pem(workdir / "sa.key", _private_pem(sa_key), private=True)
        _write_pem(
            workdir / "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def _write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode("ascii")

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "aiguillage",
                    "cluster": {
                        "server": self.server_url,
                        "certificate-authority-data": b64(self.ca_cert_path),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": b64(self.admin_cert_path),
                        "client-key-data": b64(self.admin_key_path),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "aiguillage",
                    "context": {"cluster": "aiguillage", "user": ADMIN_USER},
                }
            ],
            "current-context": "aiguillage",
            "preferences": {},
        }
        # JSON is YAML: kubectl, client-go and the Python client all read it.
        _write_pem(self.kubeconfig_path, json.dumps(config, indent=2).encode(), private=True)

    # -- processes ---------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        sockets = []
        try:
            for _ in range(3):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((_LOOPBACK, 0))
            ports = [int(sock.getsockname()[1]) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        self._etcd_port, self._etcd_peer_port, self._apiserver_port = ports

    def _spawn_etcd(self) -> None:
        workdir = self._require_started()
        client = f"http://{_LOOPBACK}:{self._etcd_port}"
        peer = f"http://{_LOOPBACK}:{self._etcd_peer_port}"
        data_dir = workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)  # a previous attempt lost a port race
        argv = [
            str(self._bin_dir / "etcd"),
            "--name=aiguillage",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=aiguillage={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self._etcd = self._spawn("etcd", argv)

    def _wait_etcd_ready(self) -> None:
        url = f"http://{_LOOPBACK}:{self._etcd_port}/health"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    body = json.loads(response.read())
            except (OSError, ValueError, http.client.HTTPException):
                return False
            return isinstance(body, dict) and body.get("health") == "true"

        self._wait_for("etcd", healthy)

    def _spawn_apiserver(self) -> None:
        workdir = self._require_started()
        defaults = [
            f"--etcd-servers=http://{_LOOPBACK}:{self._etcd_port}",
            f"--bind-address={_LOOPBACK}",
            f"--advertise-address={_LOOPBACK}",
            f"--secure-port={self._apiserver_port}",
            # No controller-manager: nothing else would maintain the `kubernetes` endpoints.
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            f"--client-ca-file={workdir / 'ca.crt'}",
            f"--tls-cert-file={workdir / 'apiserver.crt'}",
            f"--tls-private-key-file={workdir / 'apiserver.key'}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            # No token controller: ServiceAccount admission would reject every pod, waiting
            # for a `default` ServiceAccount that nothing creates.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
        ]
        argv = [
            str(self._bin_dir / "kube-apiserver"),
            *_override_flags(defaults, self._extra_apiserver_args),
        ]
        self._apiserver = self._spawn("kube-apiserver", argv)

    def _wait_apiserver_ready(self) -> None:
        context = self._admin_ssl
        assert context is not None

        def status(path: str) -> int:
            conn = http.client.HTTPSConnection(
                _LOOPBACK, self._apiserver_port, context=context, timeout=2.0
            )
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                return 0
            finally:
                conn.close()

        # /readyz covers etcd, the RBAC bootstrap roles and the other post-start hooks; the
        # `default` namespace comes from a bootstrap controller that may lag behind.
        self._wait_for("kube-apiserver", lambda: status("/readyz") == 200)
        self._wait_for(
            "kube-apiserver (namespace default)",
            lambda: status("/api/v1/namespaces/default") == 200,
        )

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self._require_started() / f"{name}.log"
        with open(log_path, "ab") as log:
            log.write(f"--- {datetime.datetime.now(datetime.UTC).isoformat()} start\n".encode())
            log.flush()
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
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
        try:
            lines = (self._require_started() / f"{log_name}.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines.splitlines()[-_LOG_TAIL_LINES:])

    def _terminate_all(self) -> None:
        # kube-apiserver first: it would otherwise spin retrying a vanished etcd.
        self._terminate(self._apiserver)
        self._apiserver = None
        self._terminate(self._etcd)
        self._etcd = None

    def _terminate(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        if proc.poll() is None:
            # Each process leads its own process group (start_new_session), and is not reaped
            # until wait() returns, so the group id cannot have been reused.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def _require_started(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane not started")
        return self._workdir


def _sweep_stale_workdirs() -> None:
    """Remove temporary directories left behind by Python processes that were killed.

    Their etcd and kube-apiserver died with them (PR_SET_PDEATHSIG), but ``atexit`` did not
    run, and etcd preallocates 64 MB of write-ahead log.
    """
    for path in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((path / _OWNER_FILE).read_text())
        except (OSError, ValueError):  # not ours, or being created right now
            continue
        if owner != os.getpid() and not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def _override_flags(defaults: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``defaults`` then ``extra``, dropping each default whose ``--name`` ``extra`` sets."""
    overridden = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    return [arg for arg in defaults if arg.split("=", 1)[0] not in overridden] + list(extra)


def _private_pem(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_pem(path: Path, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGKILL when this process dies (Linux only).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is only used
    from the main thread, whose exit is the process's exit.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook
