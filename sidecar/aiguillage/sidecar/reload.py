"""Keep the runtime's snapshot in step with the config and credentials directories.

Polls a cheap fingerprint (stat of each file, following Kubernetes' ``..data``
symlink swaps). On change it loads a complete new snapshot and swaps it in with
one assignment; a snapshot that fails to load is logged and counted, and the last
good one keeps serving.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiguillage.sidecar import log
from aiguillage.sidecar.errors import ConfigError
from aiguillage.sidecar.loader import fingerprint, load
from aiguillage.sidecar.server import Runtime

POLL_SECONDS = 0.5


def reload_once(rt: Runtime, config_dir: Path, credentials_dir: Path) -> bool:
    """Load if the files changed since the current snapshot; True if a new one was swapped in."""
    current = rt.snapshot
    stamp = fingerprint(config_dir, credentials_dir)
    if current is not None and stamp == current.fingerprint:
        return False
    if stamp == rt.rejected_fingerprint:
        return False
    try:
        snap = load(config_dir, credentials_dir)
    except ConfigError as exc:
        rt.rejected_fingerprint = stamp
        rt.metrics.inc("aiguillage_config_reloads_total", (("result", "invalid"),))
        serving = current.config.hash[:12] if current else "nothing"
        log.reload.error("config rejected, still serving %s: %s", serving, exc)
        return False
    rt.snapshot = snap
    rt.rejected_fingerprint = None
    rt.metrics.inc("aiguillage_config_reloads_total", (("result", "ok"),))
    log.reload.info(
        "serving config %s (%d routes, %d providers)",
        snap.config.hash[:12],
        len(snap.config.routes),
        len(snap.config.providers),
    )
    return True


async def watch(
    rt: Runtime, config_dir: Path, credentials_dir: Path, every: float = POLL_SECONDS
) -> None:
    while True:
        await asyncio.sleep(every)
        reload_once(rt, config_dir, credentials_dir)
