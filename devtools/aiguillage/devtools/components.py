"""etcd and kube-apiserver, the two components of the local control plane: flags and probes.

`aiguillage.devtools.controlplane.ControlPlane` picks the ports, starts the processes (through
`aiguillage.devtools.spawning`) and polls the probes below until they pass; this module says
how each component is configured and how to tell that it serves:

* etcd: a single member on loopback with fsync off (its data is disposable), ready when its
  ``/health`` endpoint says ``"health": "true"``;
* kube-apiserver: RBAC on, TLS with the certificates of `aiguillage.devtools.pki`, and the
  settings that stand in for the missing controller-manager (no endpoint reconciler, no
  ``ServiceAccount`` admission plugin). It is ready when ``/readyz`` answers 200 and the
  ``default`` namespace exists.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from aiguillage.devtools import pki

__all__ = [
    "SERVICE_ACCOUNT_ISSUER",
    "SERVICE_CLUSTER_IP_RANGE",
    "apiserver_argv",
    "apiserver_status",
    "etcd_argv",
    "etcd_healthy",
]

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"


def etcd_argv(
    etcd: Path, data_dir: Path, *, host: str, client_port: int, peer_port: int
) -> list[str]:
    """Command line of a one-member etcd cluster named ``aiguillage``, storing in ``data_dir``."""
    client = f"http://{host}:{client_port}"
    peer = f"http://{host}:{peer_port}"
    return [
        str(etcd),
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


def etcd_healthy(url: str) -> bool:
    """Whether etcd's ``/health`` endpoint at ``url`` answers ``{"health": "true"}``."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return isinstance(body, dict) and body.get("health") == "true"


def apiserver_argv(
    kube_apiserver: Path,
    workdir: Path,
    *,
    host: str,
    port: int,
    etcd_port: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """Command line of kube-apiserver, with the credentials ``pki`` wrote into ``workdir``.

    ``extra`` arguments come last; an extra ``--flag=value`` replaces the default ``--flag``.
    """
    defaults = [
        f"--etcd-servers=http://{host}:{etcd_port}",
        f"--bind-address={host}",
        f"--advertise-address={host}",
        f"--secure-port={port}",
        # No controller-manager: nothing else would maintain the `kubernetes` endpoints.
        "--endpoint-reconciler-type=none",
        "--authorization-mode=RBAC",
        f"--client-ca-file={workdir / pki.CA_CERT}",
        f"--tls-cert-file={workdir / pki.SERVING_CERT}",
        f"--tls-private-key-file={workdir / pki.SERVING_KEY}",
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={workdir / pki.SA_PUB}",
        f"--service-account-signing-key-file={workdir / pki.SA_KEY}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        # No token controller: ServiceAccount admission would reject every pod, waiting
        # for a `default` ServiceAccount that nothing creates.
        "--disable-admission-plugins=ServiceAccount",
        "--profiling=false",
    ]
    return [str(kube_apiserver), *_override_flags(defaults, extra)]


def apiserver_status(host: str, port: int, context: ssl.SSLContext, path: str) -> int:
    """HTTP status of ``GET path`` on kube-apiserver, or 0 if it does not answer."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def _override_flags(defaults: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``defaults`` then ``extra``, dropping each default whose ``--name`` ``extra`` sets."""
    overridden = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    return [arg for arg in defaults if arg.split("=", 1)[0] not in overridden] + list(extra)
