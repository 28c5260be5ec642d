"""Children started for tests and `make dev` never outlive the process that started them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiguillage.devtools.waiting import wait_for

PARENT = """
import sys, time
from pathlib import Path
from aiguillage.devtools.processes import Child
sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
child = Child("sleeper", sleeper, {}, Path(sys.argv[1]))
child.start()
print(child.proc.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits for its (new) parent to reap it
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_child_dies_with_a_parent_killed_without_cleanup(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "child.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    child_pid = 0
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)  # no atexit, no finally: as a timeout would
        parent.wait(10)
        wait_for(lambda: not _alive(child_pid), timeout=10, what="the child to die with its parent")
    finally:
        parent.kill()
        parent.wait(10)
        if child_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child_pid, signal.SIGKILL)
