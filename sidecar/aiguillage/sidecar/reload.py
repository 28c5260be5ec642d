"""Keep the runtime's snapshot in step with the config and credentials directories.

Polls a cheap fingerprint (stat of each file, following Kubernetes' ``..data``
symlink swaps). On change it loads a complete new snapshot and swaps it in with
one assignment; a snapshot that fails to load is logged and counted, and the last
good one keeps serving.

The watch loop never dies of a bad file: whatever a reload raises is logged (its type
and where, never its message, which could quote a credential), counted as
``aiguillage_config_reloads_total{result="error"}``, and the loop goes on. ``/readyz``
reports the sidecar not ready if the loop has stopped all the same (see ``Runtime.watcher``).
"""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import replace
from pathlib import Path

from aiguillage.sidecar import log
from aiguillage.sidecar.errors import ConfigError
from aiguillage.sidecar.loader import Snapshot, fingerprint, load
from aiguillage.sidecar.server import Runtime

POLL_SECONDS = 0.5
RELOADS = "aiguillage_config_reloads_total"
UNUSABLE = "aiguillage_config_providers_unusable"


def reload_once(rt: Runtime, config_dir: Path, credentials_dir: Path) -> bool:
    """Load if the files changed since the current snapshot; True if a new one was swapped in."""
    current = rt.snapshot
    stamp = fingerprint(config_dir, credentials_dir)
    if current is not None and stamp == current.fingerprint:
        return False
    if stamp == rt.rejected_fingerprint:
        return False
    serving = current.config.hash[:12] if current else "nothing"
    try:
        snap = load(config_dir, credentials_dir)
    except ConfigError as exc:
        rt.rejected_fingerprint = stamp
        rt.metrics.inc(RELOADS, (("result", "invalid"),))
        log.reload.error("config rejected, still serving %s: %s", serving, exc)
        return False
    except Exception as exc:
        # Not retried until the files change again: the same files would fail the same way.
        rt.rejected_fingerprint = stamp
        _failed(rt, exc, f"still serving {serving}")
        return False
    _swap(rt, snap)
    return True


def _swap(rt: Runtime, snap: Snapshot) -> None:
    rt.snapshot = snap
    # Limits count this namespace's requests, in the store this config names.
    rt.caller = replace(rt.caller, namespace=snap.config.namespace)
    rt.limiter.use(snap.config.shared_store, snap.store_password)
    rt.rejected_fingerprint = None
    rt.metrics.inc(RELOADS, (("result", "ok"),))
    unusable = snap.unusable
    rt.metrics.set_gauge(UNUSABLE, {(("provider", name),): 1.0 for name in sorted(unusable)})
    log.reload.info(
        "serving config %s (%d routes, %d providers, %d unusable)",
        snap.config.hash[:12],
        len(snap.config.routes),
        len(snap.config.providers),
        len(unusable),
    )
    for reason in unusable.values():
        log.reload.warning("%s; its targets are skipped", reason)


def _failed(rt: Runtime, exc: BaseException, what: str) -> None:
    rt.metrics.inc(RELOADS, (("result", "error"),))
    frame = traceback.extract_tb(exc.__traceback__)[-1:] or None
    where = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
    log.reload.error("config reload failed with %s%s; %s", type(exc).__name__, where, what)


async def watch(
    rt: Runtime, config_dir: Path, credentials_dir: Path, every: float = POLL_SECONDS
) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            reload_once(rt, config_dir, credentials_dir)
        except Exception as exc:  # e.g. from fingerprint(): keep watching whatever happens
            _failed(rt, exc, "will try again")
