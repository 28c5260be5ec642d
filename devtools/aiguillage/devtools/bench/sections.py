"""Sections of the benchmark report beyond the side-by-side tables: how each system is
configured (so a reader can check the comparison is fair), tail latency, stream capacity,
memory under load, idle memory import by import, and the cost of each sidecar feature.

Each function takes one run's results (with ``results["derived"]``) and returns Markdown
lines; a section whose measurement did not run says so in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiguillage.devtools.bench import fmt
from aiguillage.devtools.bench.derive import SYSTEM_ORDER, cell, metric, overhead


def _label(results: dict[str, Any], system: str) -> str:
    return str((results.get("systems", {}).get(system) or {}).get("label") or system)


def _present(results: dict[str, Any], *, direct: bool = False) -> list[str]:
    return [
        s for s in SYSTEM_ORDER if s in (results.get("systems") or {}) and (direct or s != "direct")
    ]


def peers(results: dict[str, Any]) -> list[str]:
    litellm = results.get("litellm") or {}
    portkey = results.get("portkey") or {}
    m = results.get("machine") or {}
    rows = [
        ["bare aiohttp pass-through", f"aiohttp {m.get('aiohttp') or '?'}",
         "1 process, default asyncio loop", "access log off", "—", "none",
         "forwards method, path, headers and body (`bench/passthrough.py`)"],
        ["Aiguillage sidecar", f"commit `{results['git']['commit'][:12]}`",
         "1 process, uvloop", "audit record per request to a file; Prometheus metrics on; "
         "tracing off", "none", "route's retry policy (2 attempts; none needed)",
         "route `bench-chat` → two EU providers (priority failover), residency checked on "
         "every attempt"],
        ["Portkey gateway", f"`@portkey-ai/gateway` {portkey.get('version') or '?'}, "
         f"Node {portkey.get('node') or '?'}", "1 process (the gateway has no worker option)",
         "`--headless`: no log console; nothing printed per request", "off (no cache header)",
         "none (no retry header)", "`x-portkey-provider: openai`, `x-portkey-custom-host: "
         "<upstream>/v1`, the upstream key as `Authorization` (sent by the load generator)"],
        ["LiteLLM proxy", f"`litellm[proxy]` {litellm.get('version') or '?'}",
         f"{litellm.get('workers', '?')} worker (`--num_workers`)",
         "`LITELLM_LOG=ERROR`, no callbacks, no database", "off (none configured)",
         "none configured", "`model_list` entry `openai/sim-small` with the upstream's "
         "`api_base`; clients send its master key"],
    ]  # fmt: skip
    lines = ["## How each system is configured", ""]
    lines += fmt.table(
        ["System", "Version", "Processes", "Logging", "Cache", "Retries", "Upstream"], rows
    )
    lines += [
        "",
        "Every system gets the same single core (pinned once ready, every thread of every "
        "process) and the same upstream, load generator, requests and load. One process per "
        "system, because one core is what each gets: a second worker would only share that "
        "core (the sidecar, the pass-through and Portkey each run one event loop; LiteLLM "
        "gets `--num_workers 1` for the same reason). Portkey 1.15.2 is installed with "
        "`npm ci` from the lock file in `bench/peers/portkey/`, which pins "
        "`@hono/node-server` to 1.14.1: with 1.14.2 and later (what a plain `npm install` "
        "picks) the gateway answers every streamed chat completion with a 500 (`TypeError: "
        "immutable`, Portkey-AI/gateway issues 1389 and 1550). Its stream handler also waits "
        "25 ms before relaying the first chunk of a stream (`build/start-server.js`): that "
        "is part of its TTFT here, as it would be in production.",
        "",
        rig(results),
        "",
    ]
    return lines


# Direct to the upstream at least this many times the fastest system: the rig is not its limit.
RIG_HEADROOM = 2.0


def _fastest(results: dict[str, Any], rps_of: Callable[[str], float | None]) -> tuple[float, str]:
    """The highest req/s among the systems under test, and which system it is."""
    found = [(rps_of(s) or 0.0, s) for s in _present(results)]
    return max(found, default=(0.0, ""))


def _headroom(
    results: dict[str, Any],
    what: str,
    direct: float | None,
    unit: str,
    rps_of: Callable[[str], float | None],
) -> tuple[str, bool | None]:
    """The sentence "<what>: direct N <unit>, R× the fastest system's (label, M)", and
    whether R reaches `RIG_HEADROOM` (None when either side was not measured)."""
    best_rps, best = _fastest(results, rps_of)
    if not direct or not best_rps:
        return f"{what}: not measured for direct and every system in this run", None
    ratio = direct / best_rps
    return (
        f"{what}: direct {fmt.rps(direct)} {unit}, {fmt.x(ratio)} the fastest system's "
        f"({_label(results, best)}, {fmt.rps(best_rps)})",
        ratio >= RIG_HEADROOM,
    )


def rig(results: dict[str, Any]) -> str:
    """What the upstream and the load generator are, and whether they capped the systems: one
    paragraph with this run's numbers (direct against the fastest system, at c=16 and for
    streams without pauses)."""
    upstream = results.get("upstream") or {}
    loadgen = (results.get("loadgen") or {}).get("kind")
    layout = results.get("layout") or {}
    where = f"CPU {layout['upstream_cpus']}" if layout.get("pinned") else "any CPU (no pinning)"
    capacity = results.get("capacity") or {}

    def plain(system: str) -> float | None:
        return metric(cell(results, system, False, 16), "rps")

    def burst(system: str) -> float | None:
        return metric(capacity.get(system), "rps")

    if upstream.get("kind") != "go":
        return (
            f"The simulated upstream is the Python simulator ({upstream.get('note', '?')}), on "
            f"{where} with the load generator: every request through a proxy costs that core "
            "the same upstream and load-generator work, so no system can pass what direct to "
            f"the upstream reached at c=16 ({fmt.rps(plain('direct'))} req/s), and the ratios "
            "between the fastest systems are capped: compare them by CPU per request."
        )
    text = (
        "The simulated upstream (`hack/upstream`) and the load generator "
        f"({'`hack/loadgen`' if loadgen == 'go' else 'the Python fallback'}) are "
        f"{'Go programs' if loadgen == 'go' else 'a Go and a Python program'} on {where}, the "
        "core the systems under test do not have: every request through a proxy costs that "
        "core the same upstream and load-generator work, so what direct to the upstream "
        "reaches is a ceiling for every system. "
    )
    python = upstream.get("python_direct") or {}
    if python.get("rps"):
        text += (
            "With the Python simulator (aiohttp) as the upstream, in the same place, direct at "
            f"c=16 reached {fmt.rps(python['rps'])} req/s in this run: no system could have "
            "passed that. The Go upstream answers the same wire format for a fraction of the "
            "CPU. "
        )
    parts = [
        _headroom(results, "Non-streaming at c=16", plain("direct"), "req/s", plain),
        _headroom(results, "streams without pauses", burst("direct"), "streams/s", burst),
    ]
    text += "; ".join(part for part, _ in parts) + ". "
    verdicts = [ok for _, ok in parts if ok is not None]
    if verdicts and all(verdicts):
        return text + (
            f"Both at least {RIG_HEADROOM:.0f}×: each system is limited by its own core, not by "
            "the rig."
        )
    if verdicts:
        return text + (
            f"Less than {RIG_HEADROOM:.0f}× somewhere: there the load generator and the upstream "
            "may still limit the fastest systems; compare those by CPU per request."
        )
    return text


def tail_latency(results: dict[str, Any]) -> list[str]:
    over = results["derived"]["overhead"]
    lines = ["## Tail latency", ""]
    lines.append(
        "Non-streaming p99 and its excess over the upstream's own p99 at the same concurrency, "
        "and each system's added p99 as a multiple of the bare pass-through's (< 1: a shorter "
        "tail than the naive proxy)."
    )
    lines.append("")
    rows = []
    pt = over.get("passthrough", [])
    for system in _present(results):
        row = [_label(results, system)]
        for c in (16, 64):
            it = cell(results, system, False, c)
            added = overhead(over.get(system, []), False, c, "added_p99_ms")
            base = overhead(pt, False, c, "added_p99_ms")
            rel = None if added is None or not base else round(added / base, 2)
            row += [fmt.abs_ms(metric(it, "latency_ms.p99")), fmt.ms(added), fmt.x(rel)]
        rows.append(row)
    lines += fmt.table(
        ["System", "p99 c=16", "added p99 c=16", "vs pass-through", "p99 c=64",
         "added p99 c=64", "vs pass-through"],
        rows,
    )  # fmt: skip
    lines.append("")
    return lines


def capacity(results: dict[str, Any]) -> list[str]:
    cap = results.get("capacity") or {}
    if not cap:
        return []
    lines = ["## Stream capacity", ""]
    lines.append(
        "The paced streams above (chunks 5 ms apart) last ~0.35 s whichever system relays "
        "them, so their streams/s only show the upstream's pace. Here the upstream sends its "
        "64 chunks without pausing, 16 streams at a time: streams/s is what each system can "
        'relay on its core, unless direct is not far above it (see "How each system is '
        "configured\"); CPU per stream is each system's own cost whatever caps streams/s."
    )
    lines.append("")
    rows = []
    direct = cap.get("direct") or {}
    for system in _present(results, direct=True):
        it = cap.get(system) or {}
        if it.get("error"):
            failed = f"failed: {it['error'][:80]}"
            rows.append([_label(results, system), "—", "—", "—", "—", failed])
            continue
        if not it:
            continue
        ttft_added = None
        if system != "direct" and direct:
            ttft_added = (metric(it, "ttft_ms.p50") or 0) - (metric(direct, "ttft_ms.p50") or 0)
        rows.append([
            _label(results, system), fmt.rps(it.get("rps")),
            fmt.abs_ms(metric(it, "ttft_ms.p50")),
            "—" if ttft_added is None else fmt.ms(round(ttft_added, 3)),
            fmt.us(it.get("cpu_us_per_request")),
            f"{it.get('completed', 0) - it.get('errors', 0)} ok, {it.get('errors', 0)} errors",
        ])  # fmt: skip
    lines += fmt.table(
        ["System", "Streams/s", "TTFT p50", "TTFT overhead p50", "CPU per stream", "Streams"],
        rows,
    )
    lines.append("")
    return lines


def memory(results: dict[str, Any]) -> list[str]:
    mem = results.get("memory") or {}
    if not mem:
        return []
    lines = ["## Memory under load", ""]
    streams = mem.get("streams") or {}
    if streams:
        n = next(iter(streams.values())).get("streams")
        lines.append(
            f"{n} streams opened at once (one connection each) while the upstream paces its "
            "chunks 20 ms apart (~1.3 s per stream), so that they are all open together; RSS "
            "of the system's processes before, at peak (sampled every 50 ms) and once quiet "
            'after. "Open together" is the most streams the load generator had open at one '
            "moment. LiteLLM is left out (at ~10 streams/s it would take minutes)."
        )
        lines.append("")
        rows = []
        for system in _present(results):
            it = streams.get(system)
            if not it:
                continue
            if it.get("error"):
                rows.append([_label(results, system), "—", "—", "—", "—", "—",
                             f"failed: {it['error'][:80]}"])  # fmt: skip
                continue
            rows.append([
                _label(results, system), f"{it['completed']} / {it['streams']}",
                str(it.get("max_in_flight") or "—"), fmt.mb1(it.get("rss_before_mb")),
                fmt.mb1(it.get("peak_rss_mb")), fmt.mb1(it.get("rss_after_mb")),
                "; ".join(it.get("error_samples") or []) or "—",
            ])  # fmt: skip
        lines += fmt.table(
            ["System", "Streams ok", "Open together", "RSS before", "Peak RSS", "RSS after",
             "Errors seen"],
            rows,
        )  # fmt: skip
        lines.append("")
    long = mem.get("long") or {}
    if long.get("error"):
        lines += [f"Long round: not measured: {long['error']}", ""]
    elif long.get("rounds"):
        lines.append(
            f"Long round: a fresh sidecar (idle {fmt.mb1(long.get('idle_rss_mb'))}) gets "
            f"{len(long['rounds'])} rounds of {long['per_round']:,} non-streaming requests at "
            "c=16; RSS once quiet after each round. Growth is counted from the first round "
            "(which holds what any first load allocates once) to the last: "
            f"{fmt.signed_mb(long.get('growth_mb'))} ({fmt.pct(long.get('growth_ratio'))}), "
            f"largest step between rounds {fmt.signed_mb(long.get('max_step_mb'))}."
        )
        lines.append("")
        rows = [
            [str(p["round"]), f"{p['requests']:,}", fmt.mb1(p["rss_mb"]), fmt.mb1(p["hwm_mb"]),
             fmt.rps(p["rps"]), str(p["errors"])]
            for p in long["rounds"]
        ]  # fmt: skip
        lines += fmt.table(
            ["Round", "Requests so far", "RSS after", "Peak RSS (VmHWM)", "Req/s", "Errors"],
            rows,
        )
        lines.append("")
    return lines


def imports(results: dict[str, Any]) -> list[str]:
    imp = results.get("imports") or {}
    if not imp:
        return []
    lines = ["## Idle memory, import by import", ""]
    if imp.get("error"):
        return [*lines, f"Not measured: {imp['error']}", ""]
    lines.append(
        f"The sidecar started on the benchmark's config under an import hook "
        "(`python -m aiguillage.devtools.bench.imports`, also `make bench-imports`): the "
        f"interpreter starts at {fmt.mb1(imp.get('start_rss_mb'))}, the start-up imports "
        f"({imp.get('modules_imported')} modules) bring it to "
        f"{fmt.mb1(imp.get('after_imports_rss_mb'))}, and it idles at "
        f"{fmt.mb1(imp.get('idle_rss_mb'))} once ready. RSS each package's modules added "
        "themselves (own: not counting other packages they imported), and import time from "
        '`-X importtime`; RSS deltas are page-granular, read them as "about this much".'
    )
    lines.append("")
    rows = [
        [f"`{p['package']}`", fmt.mb1(p["own_kb"] / 1024), str(p["modules"]),
         fmt.abs_ms(p["own_us"] / 1000)]
        for p in (imp.get("packages") or [])[:15]
    ]  # fmt: skip
    lines += fmt.table(["Package", "Own RSS", "Modules", "Own import time"], rows)
    lines.append("")
    lines.append("Modules that added the most themselves:")
    lines.append("")
    rows = [
        [f"`{m['module']}`", fmt.mb1(m["own_kb"] / 1024), fmt.mb1(m["cumulative_kb"] / 1024),
         fmt.abs_ms(None if m.get("cumulative_us") is None else m["cumulative_us"] / 1000)]
        for m in (imp.get("top_own") or [])[:12]
    ]  # fmt: skip
    lines += fmt.table(["Module", "Own RSS", "With its imports", "Import time (cumulative)"], rows)
    lines.append("")
    return lines


def features(results: dict[str, Any]) -> list[str]:
    feat = results.get("features") or {}
    if not feat:
        return []
    lines = ["## Cost of each feature", ""]
    if feat.get("error"):
        return [*lines, f"Not measured: {feat['error']}", ""]
    concurrencies = feat.get("concurrencies") or []
    loads = feat.get("loads") or {}
    load_text = ", ".join(f"c={c}: {loads[str(c)]['n']} requests" for c in concurrencies
                          if str(c) in loads)  # fmt: skip
    lines.append(
        "Sidecars that differ by one feature, side by side, each given the same non-streaming "
        f"load ({load_text}) in {feat.get('rounds')} round(s); in each round a feature's on "
        "and off sidecars run back to back (alternating which goes first) and the row gives "
        "the median over rounds of each round's comparison. Added "
        "latency = feature on minus off; throughput = on / off; CPU = the sidecar's own CPU "
        "time per request (its threads' on-CPU nanoseconds), on minus off: the least "
        "disturbed by the rest of the machine, so the targets on a feature's throughput cost "
        "read it (off/on: what a core of the sidecar's own would keep). "
        "Every variant is checked before it is measured; a row without numbers says why."
    )
    lines.append("")
    header = ["Feature"]
    for c in concurrencies:
        header += [f"added p50 c={c}", f"added p99 c={c}", f"req/s c={c}", f"CPU/req c={c}"]
    header.append("idle RSS")
    rows = []
    for row in results["derived"].get("features") or []:
        if row.get("unavailable"):
            rows.append([row["label"], *(["—"] * (4 * len(concurrencies) + 1))])
            continue
        out = [row["label"]]
        for c in concurrencies:
            it = row["by_concurrency"].get(str(c)) or {}
            out += [fmt.ms(it.get("added_p50_ms")), fmt.ms(it.get("added_p99_ms")),
                    fmt.x(it.get("rps_ratio")), fmt.signed_us(it.get("cpu_us_added"))]  # fmt: skip
        out.append(fmt.signed_mb(row.get("idle_rss_added_mb")))
        rows.append(out)
    lines += fmt.table(header, rows)
    lines.append("")
    missing = [r for r in results["derived"].get("features") or [] if r.get("unavailable")]
    if missing:
        lines.append("Not measured:")
        lines.append("")
        lines += [f"- {r['label']}: {r['unavailable']}" for r in missing]
        lines.append("")
    variants = feat.get("variants") or {}
    collector = (variants.get("tracing") or {}).get("collector")
    if collector:
        lines.append(
            f"Tracing: the collector received {collector.get('spans')} spans in "
            f"{collector.get('exports')} exports (the exporter's default batching, which "
            "drops spans when its queue of 2,048 is full)."
        )
        lines.append("")
    return lines


def data_protection(results: dict[str, Any]) -> list[str]:
    """The data-protection micro-benchmark (1 KB to 128 KB prompts), measured in the same run."""
    data = results.get("data_protection")
    if not data:
        return []
    from aiguillage.devtools.bench.privacy import report_of  # the detectors: only when needed

    text = report_of(data, results.get("command", "make bench"))
    return [
        "## Data protection, per prompt size",
        "",
        "What a data-protection scan adds to one request, for prompts of 1 KB, 16 KB and 128 KB "
        "of prose, look-alikes (order numbers, dates, prices) and personal data; the cost "
        "through a real sidecar is in the feature table above, the request path's own numbers "
        "in [`data-protection.md`](data-protection.md).",
        "",
        *text.rstrip("\n").splitlines(),
        "",
    ]
