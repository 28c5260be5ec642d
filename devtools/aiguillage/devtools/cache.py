"""Where the dev tools keep what they build once and reuse: ``~/.cache/aiguillage`` by default.

``$AIGUILLAGE_CACHE`` overrides it, else ``$XDG_CACHE_HOME/aiguillage``. It holds the Go-built
Kubernetes binaries (``bin-<version>/``, see ``hack/build-k8s.sh``), the images and the node's
image store (`aiguillage.devtools.images`, `aiguillage.devtools.node`) and the benchmark tools.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``${AIGUILLAGE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/aiguillage}``."""
    configured = os.environ.get("AIGUILLAGE_CACHE")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "aiguillage"
