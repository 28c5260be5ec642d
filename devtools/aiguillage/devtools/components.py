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

With a `ClusterNetwork` (what `aiguillage.devtools.node` passes), kube-apiserver is instead set
up to serve a real node: it listens on the node's IP and advertises it (pods reach it through
the ``kubernetes`` Service, whose endpoint is that address), keeps that endpoint up to date,
authorizes kubelets with the Node authorizer and ``NodeRestriction``, admits pods with their
ServiceAccount (the node's controller-manager creates them), and talks to kubelets with its
own client certificate.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools import pki

__all__ = [
    "APISERVER_KUBELET_CLIENT_CERT",
    "APISERVER_KUBELET_CLIENT_KEY",
    "SERVICE_ACCOUNT_ISSUER",
    "SERVICE_CLUSTER_IP_RANGE",
    "ClusterNetwork",
    "apiserver_argv",
    "apiserver_status",
    "etcd_argv",
    "etcd_healthy",
]

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
APISERVER_KUBELET_CLIENT_CERT = "apiserver-kubelet-client.crt"
APISERVER_KUBELET_CLIENT_KEY = "apiserver-kubelet-client.key"


@dataclass(frozen=True)
class ClusterNetwork:
    """The addresses of a cluster with a node: where kube-apiserver listens, and the ranges.

    ``node_ip`` is the machine's own address (kube-apiserver listens on it and advertises it;
    the kubelet registers the node with it); ``service_cidr`` holds ClusterIPs (its first
    address is the ``kubernetes`` Service's); ``pod_cidr`` holds the pods' addresses.
    """

    node_ip: str
    service_cidr: str = "10.96.0.0/12"
    pod_cidr: str = "10.88.0.0/16"


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
    etcd_host: str,
    etcd_port: int,
    network: ClusterNetwork | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Command line of kube-apiserver, with the credentials ``pki`` wrote into ``workdir``.

    Without ``network`` it serves on ``host`` with no node in mind; with it, it serves a node
    (see the module docstring) and ``host`` should be ``network.node_ip``. ``extra`` arguments
    come last; an extra ``--flag=value`` replaces the default ``--flag``.
    """
    ca = workdir / pki.CA_CERT
    if network is None:
        cluster = [
            # No controller-manager: nothing else would maintain the `kubernetes` endpoints.
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No token controller: ServiceAccount admission would reject every pod, waiting
            # for a `default` ServiceAccount that nothing creates.
            "--disable-admission-plugins=ServiceAccount",
        ]
    else:
        cluster = [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={network.service_cidr}",
            f"--kubelet-client-certificate={workdir / APISERVER_KUBELET_CLIENT_CERT}",
            f"--kubelet-client-key={workdir / APISERVER_KUBELET_CLIENT_KEY}",
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer's settings; without them every start logs CA-bundle errors.
            f"--requestheader-client-ca-file={ca}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        ]
    defaults = [
        f"--etcd-servers=http://{etcd_host}:{etcd_port}",
        f"--bind-address={host}",
        f"--advertise-address={host}",
        f"--secure-port={port}",
        *cluster,
        f"--client-ca-file={ca}",
        f"--tls-cert-file={workdir / pki.SERVING_CERT}",
        f"--tls-private-key-file={workdir / pki.SERVING_KEY}",
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={workdir / pki.SA_PUB}",
        f"--service-account-signing-key-file={workdir / pki.SA_KEY}",
        "--allow-privileged=true",
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
