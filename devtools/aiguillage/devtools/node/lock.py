"""One node per machine: an exclusive lock that every start takes and every stop releases.

A node owns machine-wide things (the ``cni0`` bridge, iptables chains, the ``kubepods``
cgroups, a few sysctls), so two runs at once (``make dev`` and an e2e session, or two helpers
on one machine) would tear down each other's node. `NodeLock` is an ``flock`` on a file in
``/run/lock``: the kernel drops it when its process dies, however it dies, so a killed run never
blocks the next one. The holder writes its PID into the file so a waiter can say who it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["DEFAULT_LOCK_PATH", "NodeLock", "NodeLockTimeout"]

DEFAULT_LOCK_PATH = Path("/run/lock/aiguillage-node.lock")


class NodeLockTimeout(RuntimeError):
    """Another process held the node lock for longer than we could wait."""


class NodeLock:
    """An exclusive, process-wide lock on ``path``; not reentrant (a second acquire waits)."""

    def __init__(self, path: Path = DEFAULT_LOCK_PATH) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self, timeout: float, on_wait: Callable[[int | None], None] | None = None) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; ``on_wait(holder_pid)`` is called
        once if the lock is busy (to tell the user why nothing happens)."""
        if self._file is not None:
            raise RuntimeError(f"{self.path} is already held by this NodeLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # noqa: SIM115  (kept open while the lock is held)
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    file.close()
                    raise NodeLockTimeout(
                        f"another node has been running on this machine for {timeout:.0f}s "
                        f"(lock {self.path}, held by PID {self.holder() or 'unknown'}); only "
                        "one can run at a time"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(self.holder())
                    told = True
                time.sleep(0.5)
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def holder(self) -> int | None:
        """PID written by the current holder, if any."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None
