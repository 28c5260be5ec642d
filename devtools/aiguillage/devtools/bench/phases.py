"""The benchmark's phases, in order, each filling its part of the results.

1. install what runs outside the project (load generator, LiteLLM's venv, Portkey's
   node_modules, the tools venv); 2. start the upstream (the Go one, ``hack/upstream``) and
   every system; 3. the load matrix (`proxy.measure_all`), the stream capacity, and direct to
   the Python simulator at c=16 (the ceiling the Go upstream lifts, for the report); 4. many
   streams at once (`memory`); 5. the py-spy profile; 6. the feature variants (`features`);
   7. the long round on a fresh sidecar; 8. idle memory import by import (`imports`);
   9. config reloads and the control plane (`controlplane`). A phase that fails records its
   error and the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import traceback
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench import controlplane, features, imports, memory, proxy, systems, tools
from aiguillage.devtools.bench.procs import Procs
from aiguillage.devtools.bench.tools import say

# The systems whose memory is measured with many streams at once (LiteLLM relays ~10
# streams/s: 1,000 of them would take minutes).
MANY_STREAMS_SYSTEMS = ("passthrough", "aiguillage", "portkey")


@dataclasses.dataclass
class Installed:
    litellm: tools.Venv | None = None
    portkey: tools.NodePackage | None = None
    tools: tools.Venv | None = None


def run_all(
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
    installed = install(wanted, results)
    program = tools.build_upstream()
    results["upstream"].update(kind=program.kind, note=program.note)
    upstream, upstream_url = systems.start_upstream(
        procs, cpus=layout["upstream_cpus"], chunks=64, interval=0.005, program=program
    )
    results["commands"].append(shlex.join(upstream.argv))
    say(f"simulated upstream ({program.kind}) at {upstream_url}")
    profile_on = args.profile if args.profile is not None else plan.profile_seconds > 0
    started, failed = start_systems(wanted, procs, upstream_url, workdir, installed, results)
    running = [started[k] for k in wanted if k in started]
    measured = proxy.measure_all(running, plan, gen, load_cpus=layout["load_cpus"], workdir=workdir)
    say("stream capacity (upstream without pauses, c=16) ...")
    results["capacity"] = proxy.measure_capacity(
        running, plan, gen, upstream_url, load_cpus=layout["load_cpus"], workdir=workdir
    )
    if program.kind == "go" and "direct" in wanted:
        results["upstream"]["python_direct"] = _python_upstream_ceiling(
            plan, gen, procs, layout, workdir
        )
    results["memory"] = {}
    if not args.skip_memory:
        say(f"{plan.streams_at_once} streams at once ...")
        results["memory"]["streams"] = {
            key: memory.many_streams(
                started[key],
                gen,
                upstream_url,
                streams=plan.streams_at_once,
                load_cpus=layout["load_cpus"],
                workdir=workdir,
            )
            for key in MANY_STREAMS_SYSTEMS
            if key in started
        }
    if "aiguillage" in started and profile_on:
        results["profile"] = _profile(
            started["aiguillage"], gen, installed.tools, procs, plan, layout, workdir
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
        _sidecar_only_phases(args, plan, gen, results, procs, upstream_url, workdir)
    procs.stop(upstream)
    if args.skip_controlplane:
        results["controlplane"] = {"error": "skipped (--skip-controlplane)"}
        return
    try:
        tools_venv = installed.tools
        py_spy = tools_venv.bin("py-spy") if tools_venv and profile_on else None
        results["controlplane"] = controlplane.run_controlplane(plan, procs, workdir, py_spy)
    except Exception as exc:  # report it, keep the other numbers
        traceback.print_exc()
        results["controlplane"] = {"error": f"{type(exc).__name__}: {exc}"}


def _sidecar_only_phases(
    args: argparse.Namespace,
    plan: proxy.Plan,
    gen: tools.LoadGenerator,
    results: dict[str, Any],
    procs: Procs,
    upstream_url: str,
    workdir: Path,
) -> None:
    layout = results["layout"]
    if args.skip_features:
        results["features"] = {"error": "skipped (--skip-features)"}
    else:
        say("feature costs: one sidecar per variant ...")
        try:
            results["features"] = features.run_features(
                procs, upstream_url, gen, plan, layout, workdir
            )
        except Exception as exc:  # report it, keep the other numbers
            traceback.print_exc()
            results["features"] = {"error": f"{type(exc).__name__}: {exc}"}
    if not args.skip_memory:
        total = plan.long_rounds * plan.long_requests_per_round
        say(f"long round: {total:,} requests on a fresh sidecar ...")
        try:
            fresh = systems.start_sidecar(
                procs, upstream_url, workdir / "long", cpus=layout["proxy_cpus"]
            )
            results["memory"]["long"] = memory.long_round(
                fresh, gen, rounds=plan.long_rounds, per_round=plan.long_requests_per_round,
                load_cpus=layout["load_cpus"], workdir=workdir,
            )  # fmt: skip
            assert fresh.proc is not None
            procs.stop(fresh.proc)
        except (systems.StartError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            results["memory"]["long"] = {"error": str(exc)}
    say("idle memory, import by import ...")
    try:
        root = workdir / "imports"
        systems.render_sidecar_config(upstream_url, root)
        results["imports"] = imports.measure(
            root / "config", procs, root, cpus=layout["proxy_cpus"]
        )
    except (systems.StartError, RuntimeError, OSError, ValueError) as exc:
        results["imports"] = {"error": str(exc)}
    try:
        results["reload"] = controlplane.run_reload(
            upstream_url, procs, workdir, plan.reload_samples, layout["proxy_cpus"]
        )
    except (RuntimeError, OSError) as exc:
        results["reload"] = {"error": str(exc)}
        say(f"config reload measurement failed: {exc}")


PYTHON_CEILING_CONCURRENCY = 16


def _python_upstream_ceiling(
    plan: proxy.Plan,
    gen: tools.LoadGenerator,
    procs: Procs,
    layout: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """Direct to the Python simulator at c=16, placed as the Go upstream is: the ceiling that
    upstream put on every system before the Go one replaced it (the report quotes both)."""
    c = PYTHON_CEILING_CONCURRENCY
    say(f"direct to the Python simulator at c={c}, for comparison ...")
    try:
        proc, url = systems.start_upstream(
            procs, cpus=layout["upstream_cpus"], chunks=64, interval=0.005,
            name="python-upstream",
        )  # fmt: skip
    except systems.StartError as exc:
        return {"error": str(exc)}
    try:
        cell = proxy.run_loadgen(
            gen, systems.direct(url), stream=False, c=c, load=plan.load("direct", False, c),
            max_seconds=plan.max_seconds, cpus=layout["load_cpus"], workdir=workdir,
        )  # fmt: skip
    except (RuntimeError, subprocess.SubprocessError, ValueError) as exc:
        return {"error": f"load generator failed: {exc}"}
    finally:
        procs.stop(proc)
    say(f"  direct to the Python simulator: {cell['rps']:.0f} req/s, {cell['errors']} errors")
    return cell


def install(wanted: list[str], results: dict[str, Any]) -> Installed:
    """Everything the wanted systems and the report need from outside the project's venv."""
    out = Installed()
    if "litellm" in wanted:
        try:
            out.litellm = tools.ensure_venv("litellm-venv", tools.LITELLM_REQUIREMENTS)
            results["install"]["litellm_venv_s"] = out.litellm.install_seconds
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            results["litellm"]["error"] = f"install failed: {exc}"
            say(f"LiteLLM unavailable: {exc}")
    if "portkey" in wanted:
        try:
            out.portkey = tools.ensure_portkey()
            results["install"]["portkey_s"] = out.portkey.install_seconds
            results["portkey"].update(version=out.portkey.version, node=out.portkey.node_version)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            results["portkey"]["error"] = f"install failed: {exc}"
            say(f"Portkey unavailable: {exc}")
    try:
        out.tools = tools.ensure_venv("bench-venv", tools.TOOLS_REQUIREMENTS)
        results["install"]["tools_venv_s"] = out.tools.install_seconds
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        say(f"matplotlib/py-spy unavailable (no charts, no profile): {exc}")
    results["tools_python"] = str(out.tools.python) if out.tools else None
    return out


def start_systems(
    wanted: list[str],
    procs: Procs,
    upstream_url: str,
    workdir: Path,
    installed: Installed,
    results: dict[str, Any],
) -> tuple[dict[str, systems.System], dict[str, str]]:
    started: dict[str, systems.System] = {}
    failed: dict[str, str] = {}
    # LiteLLM first: it takes longest, and the others' start-up is then not slowed by it.
    for key in sorted(wanted, key=lambda k: k != "litellm"):
        say(f"starting: {systems.LABELS[key]} ...")
        try:
            started[key] = _start(key, procs, upstream_url, workdir, results, installed)
        except (systems.StartError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            say(f"  {key} failed: {exc}")
            failed[key] = str(exc)
            if key in systems.PEERS:
                results[key]["error"] = str(exc)
            continue
        system = started[key]
        if system.proc is not None:
            results["commands"].extend(_commands(key, system, workdir))
            say(
                f"  ready in {system.start_to_ready_s:.2f}s, idle RSS "
                f"{system.idle.rss_mb if system.idle else 0:.1f} MB"
            )
    return started, failed


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
    if key == "portkey":
        headers = " ".join(
            f"-H {shlex.quote(h)}"
            for h in systems.portkey_headers("http://127.0.0.1:<upstream-port>")
        )
        return [
            f"# npm ci in a copy of bench/peers/portkey/, then (clients send: {headers}):",
            argv,
        ]
    return [argv]


def _start(
    key: str,
    procs: Procs,
    upstream_url: str,
    workdir: Path,
    results: dict[str, Any],
    installed: Installed,
) -> systems.System:
    cpus = results["layout"]["proxy_cpus"]
    if key == "direct":
        return systems.direct(upstream_url)
    if key == "passthrough":
        return systems.start_passthrough(procs, upstream_url, cpus=cpus)
    if key == "aiguillage":
        return systems.start_sidecar(procs, upstream_url, workdir, cpus=cpus)
    if key == "portkey":
        if installed.portkey is None:
            raise systems.StartError(results["portkey"].get("error", "not installed"))
        return systems.start_portkey(procs, installed.portkey, upstream_url, cpus=cpus)
    if installed.litellm is None:
        raise systems.StartError(results["litellm"].get("error", "not installed"))
    results["litellm"]["version"] = _installed_version(installed.litellm)
    return systems.start_litellm(
        procs, installed.litellm, upstream_url, workdir,
        cpus=cpus, workers=results["litellm"]["workers"],
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
