"""How clients reach the local control plane as its admin: the kubeconfig, and kubectl.

`aiguillage.devtools.controlplane.ControlPlane` writes the kubeconfig with `write_kubeconfig`
each time it picks its ports, embedding the CA and the admin client certificate that
`aiguillage.devtools.pki` generated; its ``kubectl()`` method is `run_kubectl` against that
kubeconfig. Tests, ``make dev`` and the operator under test read the same file through
``KUBECONFIG`` (`ControlPlane.env`).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from aiguillage.devtools.pki import write_file

__all__ = ["KubectlError", "run_kubectl", "write_kubeconfig"]

_CLUSTER = "aiguillage"


class KubectlError(subprocess.CalledProcessError):
    """`ControlPlane.kubectl` failed; unlike its base class, the message includes stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


def write_kubeconfig(
    path: Path,
    *,
    server_url: str,
    ca_cert: Path,
    client_cert: Path,
    client_key: Path,
    user: str,
) -> None:
    """Write a kubeconfig (mode 0600) for ``user``, with the PEM files embedded as data."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": _CLUSTER,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": b64(ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client_cert),
                    "client-key-data": b64(client_key),
                },
            }
        ],
        "contexts": [
            {
                "name": _CLUSTER,
                "context": {"cluster": _CLUSTER, "user": user},
            }
        ],
        "current-context": _CLUSTER,
        "preferences": {},
    }
    # JSON is YAML: kubectl, client-go and the Python client all read it.
    write_file(path, json.dumps(config, indent=2).encode(), private=True)


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the ``kubectl`` binary with ``--kubeconfig kubeconfig`` and ``args``.

    Output is captured as text; stdin is closed unless ``input`` is given. With ``check``, a
    non-zero exit raises `KubectlError` (whose message includes stderr).
    """
    argv = [str(kubectl), "--kubeconfig", str(kubeconfig), *args]
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
