"""One node per machine: a second start waits for the first, and a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aiguillage.devtools.node.lock import NodeLock, NodeLockTimeout
from aiguillage.devtools.waiting import wait_for


def test_a_second_lock_waits_and_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "node.lock"
    first, second = NodeLock(path), NodeLock(path)
    first.acquire(timeout=0)
    waited_for: list[int | None] = []
    try:
        with pytest.raises(NodeLockTimeout, match=f"held by PID {os.getpid()}"):
            second.acquire(timeout=0.6, on_wait=waited_for.append)
        assert waited_for == [os.getpid()]
    finally:
        first.release()
    second.acquire(timeout=0)  # free once released
    assert second.held
    second.release()


def test_a_killed_holder_does_not_block_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "node.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from aiguillage.devtools.node.lock import NodeLock\n"
         f"lock = NodeLock(Path({str(path)!r})); lock.acquire(timeout=0)\n"
         "print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lock = NodeLock(path)
        assert lock.holder() == holder.pid
        with pytest.raises(NodeLockTimeout):
            lock.acquire(timeout=0)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        wait_for(lambda: _try(lock), timeout=10, what="the lock of a killed process to be free")
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def _try(lock: NodeLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except NodeLockTimeout:
        return False
    return True
