"""``make bench`` / ``make bench-quick``: run everything, write the report, charts and history."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench import controlplane, proxy, report, systems, tools
from aiguillage.devtools.bench.procs import Procs
from aiguillage.devtools.bench.tools import ROOT, say

DOC = ROOT / "docs" / "benchmarks.md"
CHART_DIR = ROOT / "docs" / "bench"
HISTORY = ROOT / "bench" / "results.jsonl"
QUICK_DIR = ROOT / "bench" / "out" / "quick"


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
    for key in ("plain", "plain_slow", "stream", "stream_slow"):
        raw[key] = {str(c): v for c, v in raw[key].items()}
    raw["concurrencies"] = list(plan.concurrencies)
    return raw


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="few requests (for make bench-quick)")
    p.add_argument(
        "--systems",
        default=",".join(systems.SYSTEMS),
        help="comma-separated subset of direct,passthrough,aiguillage,litellm (for development)",
    )
    p.add_argument("--skip-controlplane", action="store_true", help="(for development)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                   help="py-spy the sidecar (default: on in full runs)")  # fmt: skip
    p.add_argument("--doc", type=Path, default=None, help="where to write the Markdown report")
    p.add_argument("--no-history", action="store_true", help="do not append to results.jsonl")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = proxy.QUICK if args.quick else proxy.FULL
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
    command = "make bench-quick" if args.quick else "make bench"
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
        "litellm": {"version": tools.LITELLM_VERSION, "workers": nproc},
        "install": {},
        "commands": [],
    }
    say(f"{plan.name} run; work directory {workdir}; logs in {workdir / 'logs'}")
    try:
        with Procs(workdir / "logs") as procs:
            _run(args, plan, wanted, results, procs, workdir)
    except KeyboardInterrupt:
        say("interrupted: every process started was stopped")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130
    results["duration_s"] = round(time.monotonic() - began, 1)
    results["machine"]["loadavg_end"] = loadavg()
    results["derived"] = report.derive(results)
    charts = draw_charts(results, chart_dir, doc, workdir)
    history = Path(os.devnull) if args.no_history else HISTORY

    link = os.path.relpath(HISTORY, doc.resolve().parent)
    report.write_outputs(results, doc, charts, history, link)
    say(f"report: {doc}")
    if not args.no_history:
        say(f"history: appended a line to {HISTORY}")
    for t in results["derived"]["targets"]:
        verdict = {None: "n/a", True: "met", False: "MISSED"}[t["met"]]
        say(f"  {t['name']:<44} {t['goal']:<9} {t['shown']:<26} {verdict}")
    say(f"done in {results['duration_s']:.0f}s")
    if args.keep:
        say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _run(
    args: argparse.Namespace,
    plan: proxy.Plan,
    wanted: list[str],
    results: dict[str, Any],
    procs: Procs,
    workdir: Path,
) -> None:
    layout = results["layout"]
    gen = tools.build_loadgen()
    results["loadgen"] = {"kind": gen.kind, "note": gen.note}
    litellm_venv: tools.Venv | None = None
    if "litellm" in wanted:
        try:
            litellm_venv = tools.ensure_venv("litellm-venv", tools.LITELLM_REQUIREMENTS)
            results["install"]["litellm_venv_s"] = litellm_venv.install_seconds
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            results["litellm"]["error"] = f"install failed: {exc}"
            say(f"LiteLLM unavailable: {exc}")
    tools_venv: tools.Venv | None = None
    try:
        tools_venv = tools.ensure_venv("bench-venv", tools.TOOLS_REQUIREMENTS)
        results["install"]["tools_venv_s"] = tools_venv.install_seconds
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        say(f"matplotlib/py-spy unavailable (no charts, no profile): {exc}")
    results["tools_python"] = str(tools_venv.python) if tools_venv else None

    upstream, upstream_url = systems.start_upstream(
        procs, cpus=layout["upstream_cpus"], chunks=64, interval=0.005
    )
    results["commands"].append(shlex.join(upstream.argv))
    say(f"simulated upstream at {upstream_url}")
    profile_on = args.profile if args.profile is not None else plan.profile_seconds > 0
    started: dict[str, systems.System] = {}
    failed: dict[str, str] = {}
    # LiteLLM first: it takes longest, and the others' start-up is then not slowed by it.
    for key in sorted(wanted, key=lambda k: k != "litellm"):
        say(f"starting: {systems.LABELS[key]} ...")
        try:
            started[key] = _start(key, procs, upstream_url, workdir, layout, litellm_venv, results)
        except (systems.StartError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            say(f"  {key} failed: {exc}")
            failed[key] = str(exc)
            if key == "litellm":
                results["litellm"]["error"] = str(exc)
            continue
        system = started[key]
        if system.proc is not None:
            results["commands"].extend(_commands(key, system, workdir))
            say(
                f"  ready in {system.start_to_ready_s:.2f}s, idle RSS "
                f"{system.idle.rss_mb if system.idle else 0:.1f} MB"
            )
    measured = proxy.measure_all(
        [started[k] for k in wanted if k in started], plan, gen,
        load_cpus=layout["load_cpus"], workdir=workdir,
    )  # fmt: skip
    if "aiguillage" in started and profile_on:
        results["profile"] = _profile(
            started["aiguillage"], gen, tools_venv, procs, plan, layout, workdir
        )
    for key in wanted:
        res = measured.get(key) or proxy.SystemResult(key, systems.LABELS[key], error=failed[key])
        results["systems"][key] = dataclasses.asdict(res)
    for system in started.values():
        if system.proc is not None:
            procs.stop(system.proc)
    results["commands"].append(
        f"taskset -c {layout['load_cpus'] or '<any>'} {shlex.join(gen.argv)} "
        f"-url <system>/v1/chat/completions -body @body.json -n N -c C -warmup W "
        f"-max-seconds {plan.max_seconds:g} -timeout 60s [-stream] "
        "[-H 'Authorization: Bearer <key>']   # one run per cell; prints JSON"
    )
    if "aiguillage" in wanted:
        try:
            results["reload"] = controlplane.run_reload(
                upstream_url, procs, workdir, plan.reload_samples, layout["proxy_cpus"]
            )
        except (RuntimeError, OSError) as exc:
            results["reload"] = {"error": str(exc)}
            say(f"config reload measurement failed: {exc}")
    procs.stop(upstream)
    if args.skip_controlplane:
        results["controlplane"] = {"error": "skipped (--skip-controlplane)"}
        return
    try:
        py_spy = tools_venv.bin("py-spy") if tools_venv and profile_on else None
        results["controlplane"] = controlplane.run_controlplane(plan, procs, workdir, py_spy)
    except Exception as exc:  # report it, keep the other numbers
        traceback.print_exc()
        results["controlplane"] = {"error": f"{type(exc).__name__}: {exc}"}


def _commands(key: str, system: systems.System, workdir: Path) -> list[str]:
    """How a started system can be started again by hand (environment included)."""
    assert system.proc is not None
    argv = shlex.join(system.proc.argv)
    if key == "aiguillage":
        return [
            "# bench/manifests/ with the upstream's address, then:",
            f"aiguillage render -f <manifests> --namespace bench --out {workdir / 'sidecar'}",
            "AIGUILLAGE_AUDIT_LOG=<dir>/audit.jsonl POD_NAMESPACE=bench POD_NAME=bench-0 " + argv,
        ]
    if key == "litellm":
        config = json.dumps(systems.litellm_config("http://127.0.0.1:<upstream-port>"))
        return [
            f"# config.yaml (JSON is YAML): {config}",
            "LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR PYTHONUNBUFFERED=1 " + argv,
        ]
    return [argv]


def _start(
    key: str,
    procs: Procs,
    upstream_url: str,
    workdir: Path,
    layout: dict[str, Any],
    litellm_venv: tools.Venv | None,
    results: dict[str, Any],
) -> systems.System:
    if key == "direct":
        return systems.direct(upstream_url)
    if key == "passthrough":
        return systems.start_passthrough(procs, upstream_url, cpus=layout["proxy_cpus"])
    if key == "aiguillage":
        return systems.start_sidecar(procs, upstream_url, workdir, cpus=layout["proxy_cpus"])
    if litellm_venv is None:
        raise systems.StartError(results["litellm"].get("error", "not installed"))
    results["litellm"]["version"] = _installed_version(litellm_venv)
    return systems.start_litellm(
        procs, litellm_venv, upstream_url, workdir,
        cpus=layout["proxy_cpus"], workers=results["litellm"]["workers"],
    )  # fmt: skip


def _installed_version(venv: tools.Venv) -> str:
    code = "from importlib.metadata import version; print(version('litellm'))"
    out = subprocess.run(
        [str(venv.python), "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return out.stdout.strip() or tools.LITELLM_VERSION


def _profile(
    system: systems.System,
    gen: tools.LoadGenerator,
    tools_venv: tools.Venv | None,
    procs: Procs,
    plan: proxy.Plan,
    layout: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    if tools_venv is None or not tools_venv.bin("py-spy").exists():
        return {"error": "py-spy is not installed"}
    seconds = plan.profile_seconds or proxy.FULL.profile_seconds
    say(f"  profiling the sidecar with py-spy for {seconds:.0f}s (c=16) ...")
    try:
        summary = proxy.profile_sidecar(
            system, gen, tools_venv.bin("py-spy"), procs, seconds=seconds,
            load_cpus=layout["load_cpus"], workdir=workdir,
        )  # fmt: skip
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    if summary.get("top"):
        for row in summary["top"]:
            say(f"    {row['own_pct']:5.1f}% own {row['total_pct']:5.1f}% total  {row['function']}")
    return summary


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
    return {
        "Latency percentiles by concurrency": f"{rel}/latency.png",
        "Throughput by concurrency": f"{rel}/throughput.png",
    }
