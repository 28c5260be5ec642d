"""``make bench`` / ``make bench-quick``: run everything, write the report, charts and history."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench import derive, phases, proxy, report, systems, tools
from aiguillage.devtools.bench.procs import Procs
from aiguillage.devtools.bench.tools import ROOT, say

DOC = ROOT / "docs" / "benchmarks.md"
CHART_DIR = ROOT / "docs" / "bench"
HISTORY = ROOT / "bench" / "results.jsonl"
QUICK_DIR = ROOT / "bench" / "out" / "quick"
PRIVACY_ROUNDS = {"quick": 3, "full": 30, "long": 30}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        aiohttp = metadata.version("aiohttp")
    except metadata.PackageNotFoundError:
        aiohttp = None
    return {
        "nproc": os.cpu_count() or 1,
        "cpu_model": cpu,
        "memory_gb": round(memory_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "go": tools.go_version(),
        "aiohttp": aiohttp,
        "loadavg_start": loadavg(),
    }


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "-s"))}


def plan_dict(plan: proxy.Plan) -> dict[str, Any]:
    raw = dataclasses.asdict(plan)
    for key in ("plain", "plain_slow", "stream", "stream_slow", "feature_loads"):
        raw[key] = {str(c): v for c, v in raw[key].items()}
    raw["concurrencies"] = list(plan.concurrencies)
    raw["feature_concurrencies"] = list(plan.feature_concurrencies)
    return raw


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="few requests (make bench-quick)")
    size.add_argument(
        "--long", action="store_true", help="with a long round of 1 M requests (make bench-long)"
    )
    p.add_argument(
        "--systems",
        default=",".join(systems.SYSTEMS),
        help=f"comma-separated subset of {','.join(systems.SYSTEMS)} (for development)",
    )
    p.add_argument("--skip-controlplane", action="store_true", help="(for development)")
    p.add_argument("--skip-features", action="store_true", help="(for development)")
    p.add_argument("--skip-memory", action="store_true", help="(for development)")
    p.add_argument("--skip-privacy", action="store_true", help="(for development)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                   help="py-spy the sidecar (default: on in full runs)")  # fmt: skip
    p.add_argument("--doc", type=Path, default=None, help="where to write the Markdown report")
    p.add_argument(
        "--no-history", action="store_true", help="history next to the report, not in bench/"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles)")
    return p.parse_args(argv)


def raise_fd_limit() -> None:
    """Let every child open as many files as allowed (1,000 streams at once are 2,000+
    sockets in a proxy): soft limit = hard limit, inherited by the children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = proxy.QUICK if args.quick else proxy.LONG if args.long else proxy.FULL
    raise_fd_limit()
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(wanted) - set(systems.SYSTEMS)
    if unknown:
        print(f"unknown systems: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.doc is not None:
        doc = args.doc
    elif args.quick:
        doc = QUICK_DIR / "benchmarks.md"
    else:
        doc = DOC
    chart_dir = CHART_DIR if doc == DOC else doc.parent / "bench"
    began = time.monotonic()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    workdir = Path(tempfile.mkdtemp(prefix="aiguillage-bench-"))
    nproc = os.cpu_count() or 1
    pinned = not args.no_pin and nproc >= 2 and shutil.which("taskset") is not None
    proxy_cpus, upstream_cpus, load_cpus = ("0", "1", "1") if pinned else (None, None, None)
    command = "make bench-quick" if args.quick else "make bench-long" if args.long else "make bench"
    results: dict[str, Any] = {
        "schema": 1,
        "mode": plan.name,
        "command": command,
        "started_at": started_at,
        "git": git_state(),
        "machine": machine(),
        "plan": plan_dict(plan),
        "layout": {
            "pinned": pinned,
            "proxy_cpus": proxy_cpus,
            "upstream_cpus": upstream_cpus,
            "load_cpus": load_cpus,
        },
        "upstream": {"chunks": 64, "chunk_interval_s": 0.005},
        "systems": {},
        "litellm": {"version": tools.LITELLM_VERSION, "workers": 1},
        "portkey": {},
        "install": {},
        "commands": [],
    }
    say(f"{plan.name} run; work directory {workdir}; logs in {workdir / 'logs'}")
    try:
        with Procs(workdir / "logs") as procs:
            phases.run_all(args, plan, wanted, results, procs, workdir)
        if not args.skip_privacy:  # in this process, once every other system has stopped
            from aiguillage.devtools.bench import privacy  # imports the detection libraries

            say("data protection: scan and apply, 1 KB to 128 KB prompts")
            results["data_protection"] = privacy.results(rounds=PRIVACY_ROUNDS[plan.name])
    except KeyboardInterrupt:
        say("interrupted: every process started was stopped")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130
    results["duration_s"] = round(time.monotonic() - began, 1)
    results["machine"]["loadavg_end"] = loadavg()
    results["derived"] = derive.derive(results)
    charts = draw_charts(results, chart_dir, doc, workdir)
    # Only full runs go into the committed history; a quick run's line stays with its report.
    keep_history = not args.no_history and not args.quick
    history = HISTORY if keep_history else doc.parent / "results.jsonl"

    link = os.path.relpath(HISTORY, doc.resolve().parent)
    report.write_outputs(results, doc, charts, history, link)
    say(f"report: {doc}")
    say(f"history: appended a line to {history}")
    for t in results["derived"]["targets"]:
        verdict = {None: "n/a", True: "met", False: "MISSED"}[t["met"]]
        say(f"  {t['name']:<60} {t['goal']:<10} {t['shown']:<36} {verdict}")
    say(f"done in {results['duration_s']:.0f}s")
    if args.keep:
        say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def draw_charts(
    results: dict[str, Any], chart_dir: Path, doc: Path, workdir: Path
) -> dict[str, str]:
    python = results.get("tools_python")
    if not python or not Path(python).exists():
        return {}
    data = workdir / "results.json"
    data.write_text(json.dumps(results))
    out = subprocess.run(
        [python, str(Path(__file__).with_name("charts.py")), str(data), str(chart_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        say(f"charts failed: {out.stderr.strip()}")
        return {}
    rel = os.path.relpath(chart_dir, doc.parent)
    titles = {
        "latency.png": "Latency percentiles by concurrency",
        "throughput.png": "Throughput by concurrency",
        "memory.png": "Memory",
        "features.png": "Cost of each feature",
    }
    written = [Path(line).name for line in out.stdout.split()]
    return {titles[name]: f"{rel}/{name}" for name in titles if name in written}
