"""CPU time of a process group, as the load phases read it per request; children in their
own session or in the benchmark's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiguillage.devtools.bench.procs import Procs, cpu_seconds, on_cpu_seconds

# A child that burns a little CPU, then waits for its stdin to close.
BURN = (
    "import sys, time\n"
    "end = time.process_time() + 0.05\n"
    "while time.process_time() < end: pass\n"
    "print(time.process_time(), flush=True)\n"
    "sys.stdin.read()\n"
)


def test_on_cpu_seconds_counts_a_groups_cpu_finer_than_clock_ticks() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        start_new_session=True, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        own = float(child.stdout.readline())  # the child's own count, once it is idle
        precise = on_cpu_seconds(child.pid)
        ticks = cpu_seconds(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    # the same time as the child counts itself (it only reads its stdin meanwhile)...
    assert own <= precise < own + 0.02
    # ...and not a whole number of clock ticks, as /proc/<pid>/stat counts it
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert abs(ticks - precise) < 2 * tick
    assert precise * 1e9 % (tick * 1e9) != 0


def test_a_group_that_has_ended_used_no_cpu_any_more() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    child.wait(timeout=30)
    assert on_cpu_seconds(child.pid) == 0.0


def test_a_child_in_the_benchmark_s_session_still_leads_its_group_and_is_stopped(
    tmp_path: Path,
) -> None:
    """The upstream shares the load generator's session (one autogroup on their shared core)
    but is stopped with its whole group like every other child."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    with Procs(tmp_path) as procs:
        shared = procs.spawn("shared", sleeper, same_session=True)
        own = procs.spawn("own", sleeper)
        assert os.getsid(shared.pid) == os.getsid(0)
        assert os.getpgid(shared.pid) == shared.pid != os.getpgid(0)
        assert os.getsid(own.pid) == own.pid
        procs.stop(shared)
        assert not shared.alive
        assert own.alive
    assert not own.alive
