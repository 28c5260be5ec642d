"""Proxy overhead and footprint: every system under the same loads, one system at a time."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench.procs import (
    PeakSampler,
    Procs,
    group_memory,
    on_cpu_seconds,
    taskset_prefix,
)
from aiguillage.devtools.bench.systems import System, request_body, stream_shape
from aiguillage.devtools.bench.tools import LoadGenerator, say


@dataclass(frozen=True)
class Load:
    """How much to send in one cell (system x streaming x concurrency)."""

    n: int
    warmup: int


@dataclass(frozen=True)
class Plan:
    name: str  # "full" or "quick"
    concurrencies: tuple[int, ...]
    # request counts by concurrency: fast systems (direct, pass-through, Aiguillage) and LiteLLM
    plain: dict[int, Load]
    plain_slow: dict[int, Load]
    stream: dict[int, Load]
    stream_slow: dict[int, Load]
    max_seconds: float  # per cell: stop starting requests after this long
    profile_seconds: float  # 0: no profile
    reload_samples: int
    apply_samples: int
    scale_namespaces: int
    scale_routes_per_namespace: int
    scale_providers: int
    # stream capacity: streams without pauses at c=16, LiteLLM with its own (smaller) load
    capacity: Load
    capacity_slow: Load
    # feature costs: interleaved rounds of these loads at these concurrencies
    feature_concurrencies: tuple[int, ...]
    feature_loads: dict[int, Load]
    feature_rounds: int
    # memory under load: streams opened at once; the long round, as rounds x requests
    streams_at_once: int
    long_rounds: int
    long_requests_per_round: int

    def load(self, system: str, stream: bool, c: int) -> Load:
        slow = system == "litellm"
        table = (self.stream_slow if slow else self.stream) if stream else (
            self.plain_slow if slow else self.plain)  # fmt: skip
        return table[c]


FULL = Plan(
    name="full",
    concurrencies=(1, 16, 64),
    plain={1: Load(2000, 200), 16: Load(8000, 400), 64: Load(8000, 640)},
    plain_slow={1: Load(200, 10), 16: Load(400, 32), 64: Load(400, 64)},
    stream={1: Load(40, 4), 16: Load(320, 16), 64: Load(640, 64)},
    stream_slow={1: Load(20, 2), 16: Load(64, 16), 64: Load(128, 64)},
    max_seconds=40,
    profile_seconds=12,
    reload_samples=12,
    apply_samples=20,
    scale_namespaces=100,
    scale_routes_per_namespace=10,
    scale_providers=20,
    capacity=Load(2000, 160),
    capacity_slow=Load(64, 16),
    feature_concurrencies=(1, 16),
    feature_loads={1: Load(600, 60), 16: Load(3000, 320)},
    # odd, for a true median of the per-round comparisons
    feature_rounds=5,
    streams_at_once=1000,
    long_rounds=5,
    long_requests_per_round=20_000,
)

QUICK = Plan(
    name="quick",
    concurrencies=(1, 16),
    plain={1: Load(300, 30), 16: Load(1500, 160)},
    plain_slow={1: Load(40, 4), 16: Load(120, 16)},
    stream={1: Load(8, 1), 16: Load(48, 16)},
    stream_slow={1: Load(5, 1), 16: Load(32, 16)},
    max_seconds=12,
    profile_seconds=0,
    reload_samples=5,
    apply_samples=6,
    scale_namespaces=20,
    scale_routes_per_namespace=10,
    scale_providers=20,
    capacity=Load(300, 32),
    capacity_slow=Load(32, 16),
    feature_concurrencies=(1, 16),
    feature_loads={1: Load(200, 20), 16: Load(600, 64)},
    feature_rounds=1,
    streams_at_once=200,
    long_rounds=2,
    long_requests_per_round=2_000,
)

# `make bench-long`: the full run with a long round of 1 M requests (10 rounds of 100 k).
LONG = dataclasses.replace(FULL, name="long", long_rounds=10, long_requests_per_round=100_000)


@dataclass
class SystemResult:
    key: str
    label: str
    cells: list[dict[str, Any]] = field(default_factory=list)
    start_to_ready_s: float | None = None
    idle_rss_mb: float | None = None
    idle_pss_mb: float | None = None
    processes: int | None = None
    peak_rss_mb: float | None = None
    peak_pss_mb: float | None = None
    after_rss_mb: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def cell(self, stream: bool, c: int) -> dict[str, Any] | None:
        for cell in self.cells:
            if cell["stream"] == stream and cell["concurrency"] == c:
                return cell
        return None


def run_loadgen(
    gen: LoadGenerator,
    system: System,
    *,
    stream: bool,
    c: int,
    load: Load,
    max_seconds: float,
    cpus: str | None,
    workdir: Path,
    body: Path | None = None,
    timeout: str = "60s",
) -> dict[str, Any]:
    """One run of the load generator against ``system``; its JSON result, with the system's
    on-CPU time per request added as ``cpu_us_per_request`` (its process group's, warm-up
    requests included in the count): what a request costs the proxy whatever limits the
    round's req/s. None for a system without a process of its own (direct).

    ``body`` is a file holding the request body (default: the benchmark's chat request)."""
    if body is None:
        body = workdir / ("body-stream.json" if stream else "body.json")
        if not body.exists():
            body.write_bytes(request_body(stream))
    argv = [
        *taskset_prefix(cpus), *gen.argv,
        "-url", system.chat_url, "-body", f"@{body}", "-n", str(load.n), "-c", str(c),
        "-warmup", str(load.warmup), "-max-seconds", str(max_seconds), "-timeout", timeout,
    ]  # fmt: skip
    if stream:
        argv.append("-stream")
    for header in system.headers:
        argv += ["-H", header]
    pid = system.proc.pid if system.proc is not None else None
    before = on_cpu_seconds(pid) if pid is not None else 0.0
    # Warm-up is not bounded by -max-seconds: bound the whole run here.
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=max_seconds * 3 + 120, check=False
    )
    spent = on_cpu_seconds(pid) - before if pid is not None else None
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed ({out.returncode}): {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout)
    requests = max(1, int(result.get("completed", 0)) + load.warmup)
    result["cpu_us_per_request"] = None if spent is None else round(spent * 1e6 / requests, 1)
    return result


def measure_all(
    systems: list[System],
    plan: Plan,
    gen: LoadGenerator,
    *,
    load_cpus: str | None,
    workdir: Path,
) -> dict[str, SystemResult]:
    """Run every cell of the plan against every system (all started), interleaved.

    For each (streaming, concurrency) the systems are measured one after the other, so that
    whatever else the machine does at a given moment weighs on all of them alike; an idle
    system uses next to no CPU meanwhile.
    """
    results: dict[str, SystemResult] = {}
    samplers: dict[str, PeakSampler] = {}
    for system in systems:
        res = SystemResult(system.key, system.label, notes=list(system.notes))
        res.start_to_ready_s = system.start_to_ready_s
        if system.idle is not None:
            res.idle_rss_mb = system.idle.rss_mb
            res.idle_pss_mb = system.idle.pss_mb
            res.processes = system.idle.processes
        results[system.key] = res
        if system.proc is not None:
            samplers[system.key] = PeakSampler(system.proc.pid).__enter__()
    try:
        for stream in (False, True):
            for c in plan.concurrencies:
                for system in systems:
                    res = results[system.key]
                    if res.error:
                        continue
                    if system.proc is not None and not system.proc.alive:
                        res.error = f"exited during the run:\n{system.proc.tail()}"
                        continue
                    began = time.monotonic()
                    try:
                        cell = run_loadgen(
                            gen, system, stream=stream, c=c,
                            load=plan.load(system.key, stream, c), max_seconds=plan.max_seconds,
                            cpus=load_cpus, workdir=workdir,
                        )  # fmt: skip
                    except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                        res.error = f"load generator failed: {exc}"
                        say(f"  {system.key}: {res.error}")
                        continue
                    res.cells.append(cell)
                    _say_cell(system.key, cell, time.monotonic() - began)
    finally:
        for key, sampler in samplers.items():
            sampler.__exit__(None, None, None)
            results[key].peak_rss_mb = sampler.peak_rss_mb
            results[key].peak_pss_mb = sampler.peak_pss_mb
    for system in systems:
        if system.proc is not None and system.proc.alive:
            results[system.key].after_rss_mb = group_memory(system.proc.pid).rss_mb
    return results


CAPACITY_CONCURRENCY = 16
CAPACITY_CHUNKS = 64


def measure_capacity(
    systems: list[System],
    plan: Plan,
    gen: LoadGenerator,
    upstream_url: str,
    *,
    load_cpus: str | None,
    workdir: Path,
) -> dict[str, dict[str, Any]]:
    """Streams per second each system relays when the upstream sends its 64 chunks without
    pausing (c=16): the proxy's own streaming capacity, which the paced streams of the main
    table (5 ms between chunks) cannot show, as there every system waits on the upstream."""
    out: dict[str, dict[str, Any]] = {}
    with stream_shape(upstream_url, chunks=CAPACITY_CHUNKS, interval=0.0):
        for system in systems:
            if system.proc is not None and not system.proc.alive:
                continue
            load = plan.capacity_slow if system.key == "litellm" else plan.capacity
            began = time.monotonic()
            try:
                cell = run_loadgen(
                    gen, system, stream=True, c=CAPACITY_CONCURRENCY, load=load,
                    max_seconds=plan.max_seconds, cpus=load_cpus, workdir=workdir,
                )  # fmt: skip
            except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                out[system.key] = {"error": str(exc)}
                continue
            out[system.key] = cell
            _say_cell(f"{system.key} burst", cell, time.monotonic() - began)
    return out


def _say_cell(key: str, cell: dict[str, Any], seconds: float) -> None:
    stream = bool(cell["stream"])
    ttft = cell.get("ttft_ms") or {}
    say(
        f"  {key:<11} {'stream' if stream else 'plain ':<6} c={cell['concurrency']:<3} "
        f"n={cell['completed'] - cell['errors']:<5} "
        f"p50={cell['latency_ms']['p50']:.2f}ms p99={cell['latency_ms']['p99']:.2f}ms "
        + (f"ttft50={ttft.get('p50', 0):.2f}ms " if stream else "")
        + f"{cell['rps']:.0f} req/s errors={cell['errors']} ({seconds:.1f}s)"
    )


# -- profile -----------------------------------------------------------------------------------


def profile_sidecar(
    system: System,
    gen: LoadGenerator,
    py_spy: Path,
    procs: Procs,
    *,
    seconds: float,
    load_cpus: str | None,
    workdir: Path,
    native: bool = True,
    stream: bool = False,
    c: int = 16,
    name: str = "sidecar",
    top: int = 15,
) -> dict[str, Any]:
    """py-spy on a sidecar under a load of ``c`` requests at a time; top frames by own time.

    ``native`` samples C frames too (socket writes, the event loop, the garbage collector),
    pausing the process at each sample: this runs apart from any measured load. If py-spy
    cannot unwind native stacks here, the profile is taken again without them.
    """
    assert system.proc is not None
    raw = workdir / f"profile-{name}.txt"
    argv = [
        str(py_spy), "record", "--pid", str(system.proc.pid), "--format", "raw",
        "--output", str(raw), "--duration", str(int(seconds)), "--rate", "250",
        "--full-filenames", "--native" if native else "--nonblocking",
    ]  # fmt: skip
    spy = procs.spawn(f"py-spy-{name}", argv, cpus=load_cpus)
    time.sleep(1.0)  # py-spy attaches
    load: dict[str, Any] = {}
    with contextlib.suppress(RuntimeError, subprocess.SubprocessError, ValueError):
        load = run_loadgen(
            gen, system, stream=stream, c=c, load=Load(1_000_000, 0),
            max_seconds=max(1.0, seconds - 1.5), cpus=load_cpus, workdir=workdir,
        )  # fmt: skip
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.popen.wait(seconds + 30)
    procs.stop(spy)
    if not raw.exists():
        if native:
            say(f"  py-spy --native failed, profiling without native frames:\n{spy.tail()}")
            return profile_sidecar(
                system, gen, py_spy, procs, seconds=seconds, load_cpus=load_cpus,
                workdir=workdir, native=False, stream=stream, c=c, name=name, top=top,
            )  # fmt: skip
        return {"error": f"py-spy wrote no profile:\n{spy.tail()}"}
    summary = summarize_raw_profile(raw.read_text(), top=top)
    summary["mode"] = "native" if native else "python"
    summary["load"] = {"rps": load.get("rps"), "requests": load.get("completed")}
    summary["raw_path"] = str(raw)
    return summary


# Leaf frames of a thread waiting for events: with --native, py-spy samples them too.
IDLE_LEAVES = frozenset({"epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "select"})


def summarize_raw_profile(text: str, top: int = 15) -> dict[str, Any]:
    """Own and total time per function from py-spy's ``--format raw`` (collapsed stacks).

    Each line is ``frame;frame;...;leaf COUNT`` with frames like ``name (file.py:123)``;
    the line number is dropped so each function is one row. Samples whose leaf is the
    event loop waiting (``epoll_wait``..., seen in native profiles) are counted apart, as
    ``idle_pct``, and left out of the percentages: those are of the time spent working.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        if frames[-1].split(" (", 1)[0] in IDLE_LEAVES:
            idle += count
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    rows = [
        {
            "function": name,
            "own_pct": round(100 * n / samples, 1) if samples else 0.0,
            "total_pct": round(100 * total[name] / samples, 1) if samples else 0.0,
        }
        for name, n in own.most_common(top)
    ]
    everything = samples + idle
    idle_pct = round(100 * idle / everything, 1) if everything else 0.0
    return {"samples": samples, "idle_samples": idle, "idle_pct": idle_pct, "top": rows}


def _function(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (short/path.py)``; a native frame keeps
    only its file's name (``write (libc.so.6)``, ``Py_DECREF (object.h)``)."""
    name, _, location = frame.strip().partition(" (")
    path = location.rstrip(")").rpartition(":")[0] or location.rstrip(")")
    if path and not path.endswith(".py") and not path.startswith("<"):
        return f"{name} ({path.rpartition('/')[2]})"
    for pattern in (r".*/site-packages/", r".*/lib/python3\.\d+/", r".*/(?=aiguillage/)"):
        shortened = re.sub(pattern, "", path, count=1)
        if shortened != path:
            path = shortened
            break
    return f"{name} ({path})" if path else name
