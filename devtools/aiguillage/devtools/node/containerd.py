"""Talking to the node's containerd with ``ctr``: readiness, image import, what runs.

``crictl`` is not packaged in Debian bookworm; ``ctr`` (from the containerd package) talks to
containerd directly, in the ``k8s.io`` namespace the CRI plugin uses. Images cannot be pulled
here, so the node imports OCI archives made by `aiguillage.devtools.images` under the exact
fully qualified name pods use (the kubelet normalises ``local/x`` to ``docker.io/local/x``).
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

__all__ = [
    "CRI_NAMESPACE",
    "ContainerdError",
    "ctr",
    "image_names",
    "import_image",
    "prune_images",
    "purge_containers",
    "ready",
]

CRI_NAMESPACE = "k8s.io"


class ContainerdError(RuntimeError):
    """A ``ctr`` command failed."""


def ctr(socket: Path, *args: str, timeout: float = 120.0) -> str:
    """Run ``ctr`` against the containerd listening on ``socket``, in the CRI namespace."""
    argv = ["ctr", "--address", str(socket), "--namespace", CRI_NAMESPACE, *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerdError(f"{' '.join(argv)}: {exc}") from exc
    if result.returncode != 0:
        raise ContainerdError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def ready(socket: Path) -> bool:
    """Whether containerd answers on ``socket``."""
    try:
        ctr(socket, "version", timeout=5)
    except ContainerdError:
        return False
    return True


def import_image(socket: Path, archive: Path, name: str) -> None:
    """Import the OCI archive ``archive`` (one image) as ``name`` (``registry/repo:tag``)."""
    repository = name.rsplit(":", 1)[0]
    ctr(socket, "images", "import", "--base-name", repository, "--digests", str(archive))
    # `--base-name` names the image after the tag recorded in the archive; make sure the exact
    # name asked for exists (an archive recorded under another tag gets that one too).
    if name not in image_names(socket):
        imported = [n for n in image_names(socket) if n.startswith(repository + "@")]
        if not imported:
            raise ContainerdError(f"importing {archive} made no image named {repository}")
        ctr(socket, "images", "tag", "--force", imported[0], name)


def purge_containers(socket: Path) -> int:
    """Kill and delete every task and container (and its snapshot); return how many there were.

    The image store outlives the node: what ran in it must not be found by the next one.
    """
    tasks = [line.split()[0] for line in ctr(socket, "tasks", "list").splitlines()[1:] if line]
    for task in tasks:
        with contextlib.suppress(ContainerdError):
            ctr(socket, "tasks", "kill", "--signal", "SIGKILL", task, timeout=30)
    for task in tasks:
        with contextlib.suppress(ContainerdError):
            ctr(socket, "tasks", "delete", "--force", task, timeout=30)
    containers = ctr(socket, "containers", "list", "--quiet").split()
    if containers:
        with contextlib.suppress(ContainerdError):
            ctr(socket, "containers", "delete", *containers, timeout=60)
    return len(containers)


def prune_images(socket: Path, keep: set[str]) -> list[str]:
    """Delete every image but those named in ``keep``; return the names deleted.

    An image is known by several names (its tag, its digest, and the CRI plugin's
    ``sha256:<config>`` id), all pointing at the same manifest: every name of a kept manifest
    stays. containerd's garbage collector then frees what no name holds any more.
    """
    rows = [line.split() for line in ctr(socket, "images", "list").splitlines()[1:]]
    manifests = {row[0]: row[2] for row in rows if len(row) > 2}  # name -> manifest digest
    kept = {manifests[name] for name in keep if name in manifests}
    stale = [name for name, digest in manifests.items() if digest not in kept]
    if stale:
        ctr(socket, "images", "delete", *stale)
    return stale


def image_names(socket: Path) -> list[str]:
    """Names of the images containerd holds for the kubelet."""
    return ctr(socket, "images", "list", "--quiet").split()
