"""Spawning and stopping the control plane's server processes so that none outlives its owner.

`aiguillage.devtools.controlplane.ControlPlane` decides *what* runs (etcd and kube-apiserver,
their flags and ports, when they are ready); this module is *how* they run:

* each process leads its own session (process group), with stdin closed and stdout and stderr
  appended to ``<name>.log`` in the control plane's work directory, behind a timestamped
  ``--- ... start`` line;
* on Linux, from the main thread, it gets ``PR_SET_PDEATHSIG`` so that it dies with the Python
  process even if that is killed without running ``atexit`` handlers;
* stopping is SIGTERM to the process group, then SIGKILL after a timeout;
* work directories record their owner's PID, so that the next start can sweep those whose
  owner was killed (its processes died with it, but the directory stayed behind).

`aiguillage.devtools.processes` is the counterpart for the operator and sidecar under test,
which tests stop, kill and restart on purpose and which therefore do not die with their parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "OWNER_FILE",
    "WORKDIR_PREFIX",
    "die_with_parent_hook",
    "free_ports",
    "log_path",
    "log_tail",
    "spawn",
    "sweep_stale_workdirs",
    "terminate",
]

WORKDIR_PREFIX = "aiguillage-cp-"
"""Prefix of the control plane's temporary directories (the sweep looks for it)."""

OWNER_FILE = "owner.pid"
"""File in a work directory holding the PID of the Python process that owns it."""

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LOG_TAIL_LINES = 40


def free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct ports free on ``host`` right now (another process may take them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def log_path(workdir: Path, name: str) -> Path:
    """Where `spawn` appends the output of process ``name``."""
    return workdir / f"{name}.log"


def spawn(name: str, argv: Sequence[str], workdir: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``workdir`` in a new session, output appended to its log file."""
    with open(log_path(workdir, name), "ab") as log:
        log.write(f"--- {datetime.datetime.now(datetime.UTC).isoformat()} start\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL it after ``timeout`` seconds; reap ``proc``."""
    if proc is None:
        return
    if proc.poll() is None:
        # Each process leads its own process group (start_new_session), and is not reaped
        # until wait() returns, so the group id cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def log_tail(workdir: Path, name: str) -> str:
    """The last lines of process ``name``'s log, or why there is none."""
    try:
        lines = log_path(workdir, name).read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines.splitlines()[-_LOG_TAIL_LINES:])


def sweep_stale_workdirs() -> None:
    """Remove temporary directories left behind by Python processes that were killed.

    Their etcd and kube-apiserver died with them (PR_SET_PDEATHSIG), but ``atexit`` did not
    run, and etcd preallocates 64 MB of write-ahead log.
    """
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):  # not ours, or being created right now
            continue
        if owner != os.getpid() and not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGKILL when this process dies (Linux only).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so it is only used
    from the main thread, whose exit is the process's exit.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook
