"""From one run's results: derived numbers (overheads, ratios, targets), Markdown, a JSON line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SYSTEM_ORDER = ("direct", "passthrough", "aiguillage", "litellm")


# -- derived numbers ---------------------------------------------------------------------------


def cell(results: dict[str, Any], system: str, stream: bool, c: int) -> dict[str, Any] | None:
    sys_res = results.get("systems", {}).get(system)
    if not sys_res:
        return None
    for item in sys_res.get("cells", []):
        if item["stream"] == stream and item["concurrency"] == c:
            return dict(item)
    return None


def metric(item: dict[str, Any] | None, path: str) -> float | None:
    if item is None:
        return None
    group, _, name = path.partition(".")
    value = item.get(group) if not name else (item.get(group) or {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def max_rps(results: dict[str, Any], system: str, stream: bool) -> tuple[float | None, int | None]:
    best: tuple[float | None, int | None] = (None, None)
    sys_res = results.get("systems", {}).get(system) or {}
    for item in sys_res.get("cells", []):
        if item["stream"] == stream and (best[0] is None or item["rps"] > best[0]):
            best = (float(item["rps"]), int(item["concurrency"]))
    return best


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Overheads over direct, ratios between systems, and the issue's targets."""
    concurrencies = results["plan"]["concurrencies"]
    overhead: dict[str, Any] = {}
    for system in SYSTEM_ORDER[1:]:
        rows = []
        for stream in (False, True):
            for c in concurrencies:
                mine, base = cell(results, system, stream, c), cell(results, "direct", stream, c)
                row: dict[str, Any] = {"stream": stream, "concurrency": c}
                for q in ("p50", "p99"):
                    row[f"added_{q}_ms"] = diff(
                        metric(mine, f"latency_ms.{q}"), metric(base, f"latency_ms.{q}")
                    )
                    if stream:
                        row[f"ttft_overhead_{q}_ms"] = diff(
                            metric(mine, f"ttft_ms.{q}"), metric(base, f"ttft_ms.{q}")
                        )
                rows.append(row)
        overhead[system] = rows
    maxima = {
        system: {
            mode: dict(zip(("rps", "concurrency"), max_rps(results, system, stream), strict=True))
            for mode, stream in (("plain", False), ("stream", True))
        }
        for system in SYSTEM_ORDER
    }

    def rps_at(system: str, stream: bool, c: int) -> float | None:
        return metric(cell(results, system, stream, c), "rps")

    ratios = {
        "aiguillage_vs_litellm_max_rps": ratio(
            maxima["aiguillage"]["plain"]["rps"], maxima["litellm"]["plain"]["rps"]
        ),
        "aiguillage_vs_passthrough_max_rps": ratio(
            maxima["aiguillage"]["plain"]["rps"], maxima["passthrough"]["plain"]["rps"]
        ),
        "aiguillage_vs_litellm_rps_c16": ratio(
            rps_at("aiguillage", False, 16), rps_at("litellm", False, 16)
        ),
        "aiguillage_vs_passthrough_rps_c16": ratio(
            rps_at("aiguillage", False, 16), rps_at("passthrough", False, 16)
        ),
        "aiguillage_vs_litellm_stream_max_rps": ratio(
            maxima["aiguillage"]["stream"]["rps"], maxima["litellm"]["stream"]["rps"]
        ),
        "aiguillage_vs_passthrough_stream_max_rps": ratio(
            maxima["aiguillage"]["stream"]["rps"], maxima["passthrough"]["stream"]["rps"]
        ),
    }
    return {
        "overhead": overhead,
        "max_rps": maxima,
        "ratios": ratios,
        "targets": targets(results, overhead, ratios),
    }


def _overhead(rows: list[dict[str, Any]], stream: bool, c: int, key: str) -> float | None:
    for row in rows:
        if row["stream"] == stream and row["concurrency"] == c:
            value = row.get(key)
            return float(value) if value is not None else None
    return None


def _target(
    name: str, goal: str, value: float | None, ok: bool | None, shown: str, source: str = "issue"
) -> dict[str, Any]:
    return {
        "name": name,
        "goal": goal,
        "value": value,
        "shown": shown,
        "met": ok,
        "source": source,
    }


def targets(
    results: dict[str, Any], overhead: dict[str, Any], ratios: dict[str, Any]
) -> list[dict[str, Any]]:
    aig = overhead.get("aiguillage", [])
    pt = overhead.get("passthrough", [])
    out = []

    def le(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def ge(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    v = _overhead(aig, False, 16, "added_p50_ms")
    out.append(_target("Added latency p50 at c=16", "≤ 0.5 ms", v, le(v, 0.5), _ms(v)))
    v = _overhead(aig, False, 16, "added_p99_ms")
    out.append(_target("Added latency p99 at c=16", "≤ 2 ms", v, le(v, 2.0), _ms(v)))
    for c in (1, 16):
        v = _overhead(aig, True, c, "ttft_overhead_p50_ms")
        out.append(_target(f"TTFT overhead p50 at c={c}", "≤ 1 ms", v, le(v, 1.0), _ms(v)))
    v = ratios.get("aiguillage_vs_litellm_max_rps")
    out.append(_target("Max req/s vs LiteLLM", "≥ 10×", v, ge(v, 10), _x(v)))
    v = ratios.get("aiguillage_vs_passthrough_max_rps")
    out.append(_target("Max req/s vs bare pass-through", "≥ 0.5×", v, ge(v, 0.5), _x(v)))
    idle = (results.get("systems", {}).get("aiguillage") or {}).get("idle_rss_mb")
    out.append(_target("Sidecar idle RSS", "≤ 45 MB", idle, le(idle, 45), _mb(idle)))
    cp = results.get("controlplane") or {}
    p95 = ((cp.get("apply_to_configmap") or {}).get("from_apply_start") or {}).get("p95")
    out.append(_target("kubectl apply → ConfigMap p95", "≤ 1 s", p95, le(p95, 1.0), _s(p95)))
    scale = cp.get("scale") or {}
    routes = scale.get("routes")
    size = f" ({routes} routes)" if routes else ""
    v = scale.get("start_to_all_configmaps_s")
    out.append(_target(f"All rendered after operator start{size}", "≤ 20 s", v, le(v, 20), _s(v)))
    v = (scale.get("provider_edit") or {}).get("apply_start_to_all_s")
    out.append(_target(f"Provider edit re-rendered{size}", "≤ 2 s", v, le(v, 2), _s(v)))
    v = scale.get("operator_hwm_mb")
    out.append(_target(f"Operator peak RSS{size}", "≤ 200 MB", v, le(v, 200), _mb(v)))
    # the team's ratio goals (shared/BENCH-NOTES.md)
    v = ratios.get("aiguillage_vs_passthrough_rps_c16")
    out.append(_target("Req/s at c=16 vs bare pass-through", "≥ 1.2×", v, ge(v, 1.2), _x(v),
                       "BENCH-NOTES"))  # fmt: skip
    v = ratios.get("aiguillage_vs_litellm_rps_c16")
    out.append(_target("Req/s at c=16 vs LiteLLM", "≥ 30×", v, ge(v, 30), _x(v), "BENCH-NOTES"))
    a = _overhead(aig, False, 1, "added_p50_ms")
    b = _overhead(pt, False, 1, "added_p50_ms")
    v = ratio(a, b)
    out.append(
        _target("Added p50 at c=1 vs pass-through's", "≤ 1.0×", v, le(v, 1.0),
                f"{_x(v)} ({_ms(a)} vs {_ms(b)})", "BENCH-NOTES")
    )  # fmt: skip
    return out


# -- formatting --------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v / 1000:+.2f} s"
    return f"{v:+.2f} ms" if abs(v) < 10 else f"{v:+.1f} ms"


def _abs_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×" if v < 10 else f"{v:.0f}×"


def _mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} MB"


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s" if v < 10 else f"{v:.1f} s"


def _rps(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else "**met**" if ok else "**missed**"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: dict[str, Any], charts: dict[str, str], history: str) -> str:
    d = results["derived"]
    m = results["machine"]
    systems = [s for s in SYSTEM_ORDER if s in results["systems"]]
    label = {s: results["systems"][s]["label"] for s in systems}
    plan = results["plan"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        f"Generated by `{results['command']}` ({results['mode']} run) on "
        f"{results['started_at'][:19].replace('T', ' ')} UTC in {results['duration_s']:.0f} s "
        f"at commit `{results['git']['commit'][:12]}`"
        + (" with uncommitted changes" if results["git"]["dirty"] else "")
        + ". Do not edit by hand: `make bench` rewrites this file and the charts, and appends "
        f"one line per run to [`bench/results.jsonl`]({history})."
    )
    add("")
    add(
        f"Everything runs on one {m['nproc']}-core machine on loopback, and other work on the "
        f"machine (load average {m['loadavg_start']} at start, {m['loadavg_end']} at the end) "
        "shares those cores: absolute milliseconds vary from run to run; **compare systems by "
        "ratio within one run** (see `shared/BENCH-NOTES.md`)."
    )
    add("")

    add("## Targets")
    add("")
    rows = [[t["name"], t["goal"], t["shown"], _met(t["met"]), t["source"]] for t in d["targets"]]
    lines += _table(["Target", "Goal", "Measured", "", "From"], rows)
    add("")
    add(
        "Added latency is the system's percentile minus the same percentile measured directly "
        "against the upstream at the same concurrency (non-streaming); TTFT overhead likewise "
        "for the time to the first SSE `data:` line. Max req/s is the best non-streaming "
        "throughput over the concurrencies tried."
    )
    add("")
    r = d["ratios"]
    add("Throughput ratios (non-streaming unless said):")
    add("")
    lines += _table(
        ["", "vs LiteLLM", "vs bare pass-through"],
        [
            ["Aiguillage, max req/s", _x(r["aiguillage_vs_litellm_max_rps"]),
             _x(r["aiguillage_vs_passthrough_max_rps"])],
            ["Aiguillage, req/s at c=16", _x(r["aiguillage_vs_litellm_rps_c16"]),
             _x(r["aiguillage_vs_passthrough_rps_c16"])],
            ["Aiguillage, streams/s (max)", _x(r["aiguillage_vs_litellm_stream_max_rps"]),
             _x(r["aiguillage_vs_passthrough_stream_max_rps"])],
        ],
    )  # fmt: skip
    add("")

    add("## Proxy overhead: non-streaming")
    add("")
    add(
        "Same request for every system: `POST /v1/chat/completions` with a one-message body; "
        "the upstream answers a fixed chat completion (~1 KB of JSON)."
    )
    add("")
    rows = []
    for c in plan["concurrencies"]:
        base = cell(results, "direct", False, c)
        for s in systems:
            it = cell(results, s, False, c)
            if it is None:
                continue
            rows.append([
                label[s], str(c), str(it["completed"] - it["errors"]),
                _abs_ms(metric(it, "latency_ms.p50")), _abs_ms(metric(it, "latency_ms.p99")),
                "—" if s == "direct" else _ms(diff(metric(it, "latency_ms.p50"),
                                                   metric(base, "latency_ms.p50"))),
                "—" if s == "direct" else _ms(diff(metric(it, "latency_ms.p99"),
                                                   metric(base, "latency_ms.p99"))),
                _rps(it["rps"]), str(it["errors"]),
            ])  # fmt: skip
    lines += _table(
        ["System", "Concurrency", "Requests", "p50", "p99", "Added p50", "Added p99",
         "Req/s", "Errors"],
        rows,
    )  # fmt: skip
    add("")

    add("## Proxy overhead: streaming")
    add("")
    up = results["upstream"]
    add(
        f'Same body with `"stream": true`; the upstream sends a first chunk at once, then '
        f"{up['chunks']} content chunks {up['chunk_interval_s'] * 1000:.0f} ms apart and "
        "`data: [DONE]`. TTFT = time to the first `data:` line; total = time to the end of the "
        "stream."
    )
    add("")
    rows = []
    for c in plan["concurrencies"]:
        base = cell(results, "direct", True, c)
        for s in systems:
            it = cell(results, s, True, c)
            if it is None:
                continue
            rows.append([
                label[s], str(c), str(it["completed"] - it["errors"]),
                _abs_ms(metric(it, "ttft_ms.p50")), _abs_ms(metric(it, "ttft_ms.p99")),
                "—" if s == "direct" else _ms(diff(metric(it, "ttft_ms.p50"),
                                                   metric(base, "ttft_ms.p50"))),
                "—" if s == "direct" else _ms(diff(metric(it, "ttft_ms.p99"),
                                                   metric(base, "ttft_ms.p99"))),
                _abs_ms(metric(it, "latency_ms.p50")),
                "—" if s == "direct" else _ms(diff(metric(it, "latency_ms.p50"),
                                                   metric(base, "latency_ms.p50"))),
                _rps(it["rps"]), str(it["errors"]),
            ])  # fmt: skip
    lines += _table(
        ["System", "Concurrency", "Streams", "TTFT p50", "TTFT p99", "TTFT overhead p50",
         "TTFT overhead p99", "Total p50", "Added total p50", "Streams/s", "Errors"],
        rows,
    )  # fmt: skip
    add("")

    add("## Footprint")
    add("")
    rows = []
    for s in systems:
        if s == "direct":
            continue
        it = results["systems"][s]
        rows.append([
            label[s], _s(it.get("start_to_ready_s")), _mb(it.get("idle_rss_mb")),
            _mb(it.get("idle_pss_mb")), _mb(it.get("peak_rss_mb")), _mb(it.get("after_rss_mb")),
            str(it.get("processes") or "—"), "; ".join(it.get("notes") or []),
        ])  # fmt: skip
    lines += _table(
        ["System", "Start → ready", "Idle RSS", "Idle PSS", "Peak RSS under load",
         "RSS after load", "Processes", "How"],
        rows,
    )  # fmt: skip
    add("")
    add(
        "Idle = 1 s after ready, before the load (LiteLLM has served its readiness request). "
        "RSS and PSS are summed over the system's process group (`/proc/<pid>/status` VmRSS, "
        "`/proc/<pid>/smaps_rollup` Pss); peak = highest value sampled every 200 ms during all "
        "of the system's loads."
    )
    add("")

    add("## Control plane")
    add("")
    cp = results.get("controlplane") or {}
    reload = results.get("reload") or {}
    if cp.get("error"):
        add(f"Not measured: {cp['error']}")
        add("")
    else:
        sc = cp.get("scale") or {}
        edit = sc.get("provider_edit") or {}
        ap = cp.get("apply_to_configmap") or {}
        fs, fr = ap.get("from_apply_start") or {}, ap.get("from_apply_return") or {}
        rows = [
            ["Objects", f"{sc.get('providers')} providers, {sc.get('routes')} routes in "
             f"{sc.get('namespaces')} namespaces (created with `kubectl apply` before the "
             f"operator starts, {_s(sc.get('kubectl_apply_s'))})"],
            ["Operator start → primed (everything listed)", _s(sc.get("start_to_primed_s"))],
            ["Operator start → all ConfigMaps written", _s(sc.get("start_to_all_configmaps_s"))],
            ["Primed → all ConfigMaps written (render + write)",
             _s(sc.get("primed_to_all_configmaps_s"))],
            ["Operator CPU time until then (user + system)",
             _s(sc.get("operator_cpu_s_to_all_configmaps"))],
            ["Operator still busy after the last ConfigMap (route and provider statuses)",
             _s(sc.get("operator_busy_after_all_configmaps_s"))],
            [f"Edit of one provider → its {edit.get('affected_namespaces')} namespaces "
             "re-rendered, from `kubectl apply` start / from its return",
             f"{_s(edit.get('apply_start_to_all_s'))} / {_s(edit.get('apply_return_to_all_s'))}"],
            ["Namespaces rewritten by that edit (others must not be)",
             f"{edit.get('rewritten_namespaces')} (unexpected: "
             f"{', '.join(edit.get('unexpected_rewrites') or []) or 'none'})"],
            ["Operator RSS after the first render / at the end / peak (VmHWM)",
             f"{_mb(sc.get('operator_rss_after_render_mb'))} / "
             f"{_mb(sc.get('operator_rss_end_mb'))} / {_mb(sc.get('operator_hwm_mb'))}"],
            [f"`kubectl apply` of a route → ConfigMap changed, p50 / p95 / max (n={fs.get('n')})",
             f"{_s(fs.get('p50'))} / {_s(fs.get('p95'))} / {_s(fs.get('max'))}"],
            ["… counted from `kubectl apply` returning, p50 / p95",
             f"{_s(fr.get('p50'))} / {_s(fr.get('p95'))}"],
        ]  # fmt: skip
        lines += _table(["Measure", "Value"], rows)
        add("")
        add(
            f"Real etcd + kube-apiserver (started in {_s(cp.get('controlplane_start_s'))}), the "
            "operator as a child process; ConfigMap changes are timed from a watch on the API "
            "server. The apply → ConfigMap samples run with all the objects above still loaded."
        )
        add("")
    op_prof = (cp.get("scale") or {}).get("operator_profile") or {}
    if op_prof.get("top"):
        add(
            f"Where the operator spends its CPU from start to the last ConfigMap (py-spy "
            f"`--gil`: only samples holding the GIL, {op_prof.get('samples')} at 100 Hz):"
        )
        add("")
        lines += _table(
            ["#", "Function", "Own", "Total"],
            [
                [str(i), f"`{row['function']}`", f"{row['own_pct']:.1f}%",
                 f"{row['total_pct']:.1f}%"]
                for i, row in enumerate(op_prof["top"], 1)
            ],
        )  # fmt: skip
        add("")
    if reload.get("error"):
        add(f"Config file → sidecar serving: not measured: {reload['error']}")
    elif reload:
        add(
            f"Config file → sidecar serving it (config.json replaced by an atomic rename; done "
            f"when `/readyz` reports the new hash; n={reload.get('n')}): p50 "
            f"{_s(reload.get('p50'))}, p95 {_s(reload.get('p95'))}, max {_s(reload.get('max'))}. "
            "The sidecar polls its files every 0.5 s, which bounds this."
        )
    add("")

    prof = results.get("profile") or {}
    if prof.get("top"):
        add("## Where the sidecar spends its time")
        add("")
        add(
            f"py-spy ({prof.get('samples')} samples at 250 Hz, non-blocking) on the sidecar "
            f"under the c=16 non-streaming load ({_rps(prof['load'].get('rps'))} req/s while "
            "profiled). Top functions by own time (percent of on-CPU samples; time in "
            "uvloop's C code is counted as the own time of the frame running the loop, "
            "`Runner.run`):"
        )
        add("")
        lines += _table(
            ["#", "Function", "Own", "Total"],
            [
                [str(i), f"`{row['function']}`", f"{row['own_pct']:.1f}%",
                 f"{row['total_pct']:.1f}%"]
                for i, row in enumerate(prof["top"], 1)
            ],
        )  # fmt: skip
        add("")
    elif prof.get("error"):
        add(f"Profile: not taken: {prof['error']}")
        add("")

    if charts:
        add("## Charts")
        add("")
        for title, path in charts.items():
            add(f"![{title}]({path})")
            add("")

    add("## Machine and software")
    add("")
    rows = [
        ["CPU", f"{m['cpu_model']} — {m['nproc']} cores (`nproc`)"],
        ["Memory", f"{m['memory_gb']:.1f} GB"],
        ["OS kernel", m["kernel"]],
        ["Python", m["python"]],
        ["Go", m.get("go") or "—"],
        ["aiohttp (sidecar, pass-through)", m.get("aiohttp") or "—"],
        ["LiteLLM", results["litellm"].get("version") or "—"],
        ["Load generator", results["loadgen"]["note"]],
    ]
    lines += _table(["", ""], rows)
    add("")

    add("## How it was run")
    add("")
    add("```sh")
    add("make bench        # this report: all concurrencies, then docs/benchmarks.md and charts")
    add("make bench-quick  # fewer requests and concurrencies, report in bench/out/quick/")
    add("```")
    add("")
    inst = results.get("install") or {}
    add(
        "The first run also builds the Go load generator (~1 s) and installs, once, into "
        f"`~/.cache/aiguillage/`: LiteLLM's venv ({_s(inst.get('litellm_venv_s'))}) and the "
        f"tools venv with matplotlib and py-spy ({_s(inst.get('tools_venv_s'))}); later runs "
        "reuse them."
    )
    add("")
    layout = results["layout"]
    if layout["pinned"]:
        add(
            f"CPU pinning (`taskset`): the system under test on CPU {layout['proxy_cpus']}; the "
            f"simulated upstream on CPU {layout['upstream_cpus']}; the load generator on CPU "
            f"{layout['load_cpus']}. The proxy thus has a core of its own, like a sidecar with a "
            "1-CPU limit, and the upstream and the load generator (the same for every system) "
            f"share the other. LiteLLM's {results['litellm'].get('workers')} workers share the "
            "proxy's core: the same CPU budget as every other system. Systems start on all "
            "cores (start → ready is not measured pinned) and are pinned once ready, every "
            "process and thread (`taskset -a -p`). All systems run at once (idle ones use next "
            "to no CPU) and each load is sent to them one after the other, so that other work "
            "on the machine weighs on all alike."
        )
    else:
        add("No CPU pinning (`taskset` missing or fewer than 2 cores): everything shares.")
    add("")
    plan_rows = []
    for c in plan["concurrencies"]:
        plan_rows.append([
            str(c),
            f"{plan['plain'][str(c)]['n']} (+{plan['plain'][str(c)]['warmup']} warm-up)",
            f"{plan['plain_slow'][str(c)]['n']} (+{plan['plain_slow'][str(c)]['warmup']})",
            f"{plan['stream'][str(c)]['n']} (+{plan['stream'][str(c)]['warmup']})",
            f"{plan['stream_slow'][str(c)]['n']} (+{plan['stream_slow'][str(c)]['warmup']})",
        ])  # fmt: skip
    add(
        f"Requests per cell (each cell also stops starting requests after "
        f"{plan['max_seconds']:.0f} s; the tables show how many completed):"
    )
    add("")
    lines += _table(
        ["Concurrency", "Non-streaming", "… LiteLLM", "Streaming", "… LiteLLM"], plan_rows
    )
    add("")
    add(
        "The processes, as started (ports and the temporary directory change at each run; each "
        "system is then pinned with `taskset -a -p -c "
        f"{layout['proxy_cpus'] or '<cpus>'} <pid>` for every process of its group):"
    )
    add("")
    add("```sh")
    for line in results["commands"]:
        add(line)
    add("```")
    add("")
    return "\n".join(lines)


def json_line(results: dict[str, Any]) -> str:
    """One line for ``bench/results.jsonl``: everything but bulky raw profile paths."""
    slim = {k: v for k, v in results.items() if k not in ("commands",)}
    return json.dumps(slim, sort_keys=True, separators=(",", ":"))


def write_outputs(
    results: dict[str, Any], doc: Path, charts: dict[str, str], jsonl: Path, history_link: str
) -> None:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(markdown(results, charts, history_link))
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("a") as fh:
        fh.write(json_line(results) + "\n")
