"""Memory under load: many streams open at once, and a long round of requests.

* `many_streams`: the load generator opens N streams at once (one connection each, N=1,000
  in ``make bench``) through a system while the upstream paces its chunks so that every
  stream stays open for over a second; the system's RSS is sampled every 50 ms (peak) and
  read again once it is quiet (after). The load generator reports how many streams really
  were open at the same moment (``max_in_flight``).
* `long_round`: a fresh sidecar gets R rounds of M non-streaming requests at c=16; its RSS
  is read after each round once it is quiet. Growth between rounds is what a leak looks like
  (``make bench``: 5 x 20 k; ``make bench-long``: 10 x 100 k = 1 M).

`growth` turns the long round into the numbers the report and the targets use.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from typing import Any

from aiguillage.devtools.bench.procs import PeakSampler, group_memory, wait_quiet
from aiguillage.devtools.bench.proxy import Load, run_loadgen
from aiguillage.devtools.bench.systems import System, stream_shape
from aiguillage.devtools.bench.tools import LoadGenerator, say

# Streams of 64 chunks 20 ms apart last ~1.3 s: long enough for all of them to be open at once.
HELD_STREAM_CHUNKS = 64
HELD_STREAM_INTERVAL = 0.02
LONG_CONCURRENCY = 16


def many_streams(
    system: System,
    gen: LoadGenerator,
    upstream_url: str,
    *,
    streams: int,
    load_cpus: str | None,
    workdir: Any,
) -> dict[str, Any]:
    """RSS before, at peak and after ``streams`` streams opened at once through ``system``."""
    proc = system.proc
    assert proc is not None
    wait_quiet(proc.pid, quiet=0.5, timeout=20)
    before = group_memory(proc.pid).rss_mb
    began = time.monotonic()
    with (
        stream_shape(upstream_url, chunks=HELD_STREAM_CHUNKS, interval=HELD_STREAM_INTERVAL),
        PeakSampler(proc.pid, every=0.05) as sampler,
    ):
        try:
            cell = run_loadgen(
                gen, system, stream=True, c=streams, load=Load(streams, 0), max_seconds=120,
                cpus=load_cpus, workdir=workdir, timeout="120s",
            )  # fmt: skip
        except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
            return {"streams": streams, "error": str(exc)}
    wait_quiet(proc.pid, quiet=0.5, timeout=30)
    after = group_memory(proc.pid).rss_mb
    result = {
        "streams": streams,
        "completed": cell["completed"] - cell["errors"],
        "errors": cell["errors"],
        "error_samples": cell.get("error_samples", []),
        "max_in_flight": cell.get("max_in_flight"),
        "ttft_ms": cell.get("ttft_ms"),
        "latency_ms": cell.get("latency_ms"),
        "rss_before_mb": before,
        "peak_rss_mb": sampler.peak_rss_mb,
        "rss_after_mb": after,
        "seconds": round(time.monotonic() - began, 1),
    }
    say(
        f"  {system.key:<11} {streams} streams at once: {result['completed']} ok, "
        f"{result['errors']} errors, at most {result['max_in_flight']} open together; RSS "
        f"{before:.1f} -> peak {sampler.peak_rss_mb:.1f} -> after {after:.1f} MB"
    )
    return result


def long_round(
    system: System,
    gen: LoadGenerator,
    *,
    rounds: int,
    per_round: int,
    load_cpus: str | None,
    workdir: Any,
) -> dict[str, Any]:
    """RSS after each of ``rounds`` rounds of ``per_round`` requests (c=16) to ``system``."""
    proc = system.proc
    assert proc is not None
    points: list[dict[str, Any]] = []
    idle = system.idle.rss_mb if system.idle else None
    total = 0
    for number in range(1, rounds + 1):
        # a generous time limit: the round is bounded by its count, not its duration
        cell = run_loadgen(
            gen, system, stream=False, c=LONG_CONCURRENCY, load=Load(per_round, 0),
            max_seconds=max(60.0, per_round / 50), cpus=load_cpus, workdir=workdir,
        )  # fmt: skip
        total += int(cell["completed"])
        wait_quiet(proc.pid, quiet=0.5, timeout=30)
        mem = group_memory(proc.pid)
        point = {
            "round": number,
            "requests": total,
            "rss_mb": mem.rss_mb,
            "hwm_mb": mem.leader_hwm_mb,
            "rps": cell["rps"],
            "errors": cell["errors"],
        }
        points.append(point)
        say(
            f"  long round {number}/{rounds}: {total:,} requests, RSS {mem.rss_mb:.1f} MB "
            f"({cell['rps']:.0f} req/s, {cell['errors']} errors)"
        )
    return {"idle_rss_mb": idle, "per_round": per_round, "rounds": points, **growth(points)}


def growth(points: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS after the last round against after the first: in MB and as a fraction.

    The first round is the baseline (not the idle process): it includes what any first load
    allocates once (buffers, caches, the allocator's arenas), which is not growth.
    """
    if len(points) < 2:
        return {"growth_mb": None, "growth_ratio": None}
    first, last = float(points[0]["rss_mb"]), float(points[-1]["rss_mb"])
    return {
        "baseline_requests": points[0]["requests"],
        "final_requests": points[-1]["requests"],
        "growth_mb": round(last - first, 1),
        "growth_ratio": round((last - first) / first, 4) if first else None,
        "max_step_mb": round(
            max(float(b["rss_mb"]) - float(a["rss_mb"]) for a, b in itertools.pairwise(points)), 1
        ),
    }
