"""CPU time of a process group, as the load phases read it per request."""

from __future__ import annotations

import os
import subprocess
import sys

from aiguillage.devtools.bench.procs import cpu_seconds, on_cpu_seconds

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
