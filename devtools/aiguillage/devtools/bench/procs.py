"""Child processes of the benchmark: own process group, optional CPU pinning, always stopped.

Every process the benchmark starts goes through `Procs.spawn`: it leads its own process group
(so LiteLLM's workers and anything else it forks are stopped with it), gets ``PR_SET_PDEATHSIG``
(it dies with the benchmark even on SIGKILL), and is pinned with ``taskset`` when asked. `Procs`
is a context manager whose exit stops every group still running: SIGTERM, then SIGKILL.

Each child also starts its own session, except when ``same_session`` says otherwise: with the
kernel's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) a session is a
scheduling group, and two busy groups sharing one core get it in turns of several
milliseconds. The simulated upstream shares its core with the load generator (started by
``subprocess.run``, in the benchmark's session): in sessions of their own, a Go upstream
measured 14k instead of 26k req/s at c=16, with a p50 of 0.06 ms and a max of 275 ms (bursts
and stalls, 2026-11-30), so it is started in the benchmark's session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from aiguillage.devtools.spawning import die_with_parent_hook


def taskset_prefix(cpus: str | None) -> list[str]:
    """``taskset -c CPUS`` when pinning is asked for and ``taskset`` exists, else nothing."""
    if not cpus:
        return []
    path = shutil.which("taskset")
    return [path, "-c", cpus] if path else []


def pin_group(pgid: int, cpus: str | None) -> bool:
    """Pin every thread of every process in a group to ``cpus`` (``taskset -a -p``)."""
    path = shutil.which("taskset")
    if not cpus or path is None:
        return False
    ok = True
    for pid in group_pids(pgid):
        result = subprocess.run(
            [path, "-a", "-p", "-c", cpus, str(pid)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        ok = ok and result.returncode == 0
    return ok


@dataclass
class Proc:
    """One started child: the leader of its own process group."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    started: float  # time.monotonic() just before spawning
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL it after ``timeout``; idempotent."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        # Workers of a pre-fork server may outlive their leader for a moment.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


class Procs:
    """Starts children and stops all of them on exit, Ctrl-C or SIGTERM included."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[Proc] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C, kill and a closed terminal all unwind through the `finally`s that stop
            # the children (SIGINT too: a shell may have started us with it ignored).
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, _raise_interrupt)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdout_pipe: bool = False,
        stdin: IO[bytes] | None = None,
        same_session: bool = False,
    ) -> Proc:
        """Start ``argv`` (pinned to ``cpus`` if given), output to ``<log_dir>/<name>.log``.

        With ``stdout_pipe`` stdout is a pipe the caller reads (stderr still goes to the log);
        ``stdin`` is another child's stdout pipe to read (default: nothing); with
        ``same_session`` it stays in the benchmark's session, so in the same autogroup as the
        load generator (still leading its own process group).
        """
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115  (closed by Proc.stop)
        full = [*taskset_prefix(cpus), *argv]
        started = time.monotonic()
        popen = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            env=env,
            cwd=cwd,
            start_new_session=not same_session,
            process_group=0 if same_session else None,
            preexec_fn=die_with_parent_hook(),
        )
        proc = Proc(name, full, log_path, popen, started, log)
        self._procs.append(proc)
        return proc

    def drain(self, source: Proc, name: str, path: Path, *, cpus: str | None = None) -> Proc:
        """A ``cat`` copying ``source``'s stdout pipe into ``path``, as a container runtime
        copies a container's stdout into its log file (on its own CPU if ``cpus``)."""
        assert source.popen.stdout is not None
        with path.open("ab") as out:
            full = [*taskset_prefix(cpus), "cat"]
            popen = subprocess.Popen(
                full, stdin=source.popen.stdout, stdout=out, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent_hook(),
            )  # fmt: skip
        # The reader owns the pipe now: the benchmark keeps no end of it open.
        source.popen.stdout.close()
        proc = Proc(name, full, path, popen, time.monotonic())
        self._procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- memory ------------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is ``pgid`` (the leader first)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # fields after the ")" closing the command name: state ppid pgrp ...
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) > 2 and rest[2] == str(pgid):
            found.append(int(entry))
    return sorted(found, key=lambda p: (p != pgid, p))


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time used so far by the live processes of a group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[-1].split()
            total += int(rest[11]) + int(rest[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def on_cpu_seconds(pgid: int) -> float:
    """CPU time used so far by the live threads of a group's live processes, to the
    nanosecond (each thread's ``/proc/<pid>/task/<tid>/schedstat``): what the load phases
    divide by a few thousand requests, where :func:`cpu_seconds`'s 10 ms clock ticks are 3 to
    15 µs a request. Threads that have ended are not counted (the sidecar keeps its own);
    without schedstat, :func:`cpu_seconds`."""
    total, read = 0, False
    for pid in group_pids(pgid):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # a process that just ended
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[0])
                read = True
            except (OSError, ValueError, IndexError):
                continue  # a thread that just ended, or a kernel without schedstat
    return total / 1e9 if read else cpu_seconds(pgid)


def wait_quiet(pgid: int, quiet: float = 1.0, timeout: float = 60.0) -> float:
    """Wait until a group used almost no CPU for ``quiet`` seconds; return how long it took."""
    began = time.monotonic()
    last = cpu_seconds(pgid)
    while time.monotonic() - began < timeout:
        time.sleep(quiet)
        now = cpu_seconds(pgid)
        if now - last < 0.02 * quiet:
            break
        last = now
    return time.monotonic() - began


@dataclass(frozen=True)
class Memory:
    """Memory of a process group in MB: summed RSS, summed PSS, and how many processes."""

    rss_mb: float
    pss_mb: float
    processes: int
    leader_rss_mb: float
    leader_hwm_mb: float


def group_memory(pgid: int) -> Memory:
    pids = group_pids(pgid)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    pss = sum(_pss_kb(p) for p in pids)
    return Memory(
        rss_mb=round(rss / 1024, 1),
        pss_mb=round(pss / 1024, 1),
        processes=len(pids),
        leader_rss_mb=round(_status_kb(pgid, "VmRSS") / 1024, 1),
        leader_hwm_mb=round(_status_kb(pgid, "VmHWM") / 1024, 1),
    )


class PeakSampler:
    """Polls a process group's RSS in a thread and keeps the peak (for "RSS under load")."""

    def __init__(self, pgid: int, every: float = 0.2) -> None:
        self.pgid = pgid
        self.every = every
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _sample(self) -> None:
        mem = group_memory(self.pgid)
        self.peak_rss_mb = max(self.peak_rss_mb, mem.rss_mb)
        self.peak_pss_mb = max(self.peak_pss_mb, mem.pss_mb)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()
