"""The cost of each sidecar feature: the same load on sidecars that differ by that one feature.

Every *variant* is the benchmark's sidecar (bench/manifests/ rendered, audit to a file, metrics
on) with one thing changed, through the compiled config where it has a field (residency, data
protection, limits with a shared store) or through the environment (audit destination,
tracing, metrics). Each *feature* is a pair of variants, on and off; its cost is the difference
of their latency percentiles, the ratio of their throughputs and the difference of the
sidecar's own CPU time per request, at c=1 and c=16, over rounds. In each round every
feature's two variants are measured back to back (which goes first alternates between rounds),
and its cost is the median over rounds of each round's on/off ratio and on minus off
differences: on a shared machine whose speed swings within seconds, comparing medians taken
from runs far apart in time measured the machine, not the feature (a residency check that
costs well under a microsecond showed as 0.54× the throughput).

Nothing is assumed to work: each variant is checked after it starts (a probe request, and
what should follow from it: an audit line where it should be and nowhere else, a request
blocked by a data-protection rule, spans at the collector, counters in Redis). A variant
that fails its check — because the sidecar has no such switch yet, or the feature is not on
the request path yet — is not measured, and its features' rows say why and which switch the
sidecar would need, instead of showing a number that measures nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiguillage.devtools.bench import services
from aiguillage.devtools.bench.procs import Proc, Procs
from aiguillage.devtools.bench.proxy import Load, Plan, run_loadgen
from aiguillage.devtools.bench.systems import (
    MODEL,
    System,
    http_request,
    render_sidecar_config,
    request_body,
    run_sidecar,
    sidecar_env,
)
from aiguillage.devtools.bench.tools import LoadGenerator, say
from aiguillage.devtools.waiting import NotYet, wait_for

# A word a data-protection deny list blocks: the probe that tells whether the request path
# applies the route's rules at all. It never appears in the measured requests.
PROBE_TERM = "Nightjar"
BODIES = ("plain", "personal")
# How long a check waits for an audit record to appear (where it should, or where it should
# not): the sidecar flushes its audit on the next turn of its event loop.
AUDIT_WAIT_SECONDS = 5.0
AUDIT_OFF_WAIT_SECONDS = 1.5
AuditMode = Literal["file", "stdout", "off"]


@dataclass
class Context:
    procs: Procs
    upstream_url: str
    workdir: Path
    cpus: str | None  # the sidecars' CPU
    aux_cpus: str | None  # services' and log readers' CPU (with the load generator)
    otlp_url: str | None = None
    redis_port: int | None = None
    service_errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    audit: AuditMode = "file"
    # transforms the compiled config (JSON, camelCase), or None
    edit: Callable[[dict[str, Any], Context], dict[str, Any]] | None = None
    env: Callable[[Context], dict[str, str]] | None = None
    # why it cannot run here (before starting it), or None
    requires: Callable[[Context], str | None] | None = None
    # after a probe request: why the variant is not what it claims to be, or None
    verify: Callable[[Started, Context], str | None] | None = None
    # after the measurement (what only shows after load: spans, counters)
    verify_after: Callable[[Started, Context], str | None] | None = None
    switch: str | None = None  # the sidecar switch this variant needs, named in the report


@dataclass(frozen=True)
class Feature:
    key: str
    label: str
    on: str  # variant keys
    off: str
    body: str = "plain"
    # the issue's ceiling on the throughput it may cost (0.10 = 10 %), if it sets one
    max_throughput_cost: float | None = None


@dataclass
class Started:
    variant: Variant
    system: System
    root: Path  # its config, credentials, audit file; its working directory
    log: Path  # its stderr, and its stdout unless that is a pipe
    drain: Proc | None = None

    @property
    def audit_file(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def stdout_file(self) -> Path:
        return self.root / "stdout.jsonl"


# -- the variants ------------------------------------------------------------------------------


def _no_residency(config: dict[str, Any], ctx: Context) -> dict[str, Any]:
    for route in config["routes"].values():
        route["residency"] = {}
    return config


def data_protection_rules() -> dict[str, Any]:
    """The privacy micro-benchmark's rules (pseudonymise or redact toward non-EU targets,
    audit everywhere) plus a deny list whose term is blocked (the probe)."""
    from aiguillage.devtools.bench import privacy  # imports the engine: only when needed

    rules = copy.deepcopy(privacy.RULES)
    rules["rules"].append({"categories": ["bench_probe"], "action": "block"})
    rules["denyLists"] = [{"name": "bench_probe", "terms": [PROBE_TERM]}]
    return rules


def _with_data_protection(config: dict[str, Any], ctx: Context) -> dict[str, Any]:
    for route in config["routes"].values():
        route["dataProtection"] = data_protection_rules()
    return config


def _limits_supported() -> str | None:
    from aiguillage.sidecar.config import Route, SidecarConfig

    if "limits" not in Route.model_fields or "shared_store" not in SidecarConfig.model_fields:
        return (
            "needs sidecar support: the compiled config has no Route.limits / "
            "SidecarConfig.shared_store yet (AIPolicy limits and budgets)"
        )
    return None


def _requires_redis(ctx: Context) -> str | None:
    return _limits_supported() or ctx.service_errors.get("redis")


def _with_budget(config: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # A budget far above what the run spends: every request is checked, none refused.
    limit = {"policy": "bench-budget", "scope": "namespace", "budgetEurPerMonth": "1000000"}
    for route in config["routes"].values():
        route["limits"] = [limit]
    config["sharedStore"] = {"url": f"redis://127.0.0.1:{ctx.redis_port}/0", "keyPrefix": "bench"}
    return config


def _requires_otlp(ctx: Context) -> str | None:
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None:
        return (
            "opentelemetry-exporter-otlp-proto-http is not installed "
            "(pip install 'aiguillage[otlp]')"
        )
    return ctx.service_errors.get("otlp")


def _tracing_env(ctx: Context) -> dict[str, str]:
    # The exporter's defaults otherwise (batch every 5 s, queue of 2,048 spans): what a user
    # gets by setting the standard variable.
    return {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ctx.otlp_url}/v1/traces",
        "OTEL_SERVICE_NAME": "aiguillage-bench",
    }


def _within(check: Callable[[], bool], seconds: float) -> bool:
    """Whether ``check()`` comes true within ``seconds``."""
    try:
        wait_for(check, timeout=seconds)
    except NotYet:
        return False
    return True


def _has_audit_line(path: Path) -> bool:
    try:
        return b'"requestId"' in path.read_bytes()
    except OSError:
        return False


def _verify_audit_file(started: Started, ctx: Context) -> str | None:
    if not _within(lambda: _has_audit_line(started.audit_file), AUDIT_WAIT_SECONDS):
        return f"no audit record in {started.audit_file} after a request"
    return None


def _verify_audit_stdout(started: Started, ctx: Context) -> str | None:
    if not _within(lambda: _has_audit_line(started.stdout_file), AUDIT_WAIT_SECONDS):
        return "no audit record on stdout after a request"
    return None


def _verify_audit_off(started: Started, ctx: Context) -> str | None:
    named_off = started.root / "off"
    log = started.log
    seen = _within(
        lambda: _has_audit_line(named_off) or _has_audit_line(log), AUDIT_OFF_WAIT_SECONDS
    )
    if seen:
        where = f"a file named {named_off.name!r}" if _has_audit_line(named_off) else "stdout"
        return (
            "needs sidecar switch AIGUILLAGE_AUDIT_LOG=off: the sidecar has no way to turn the "
            f"audit off (with that value it wrote the record to {where})"
        )
    return None


def _verify_metrics_off(started: Started, ctx: Context) -> str | None:
    status, text = http_request(f"{started.system.base_url}/metrics")
    if status == 200 and b"aiguillage_requests_total{" in text:
        return "needs sidecar switch AIGUILLAGE_METRICS=off: /metrics still counts requests"
    return None


def _verify_data_protection(started: Started, ctx: Context) -> str | None:
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": f"About {PROBE_TERM}."}]}
    ).encode()
    status, _ = http_request(started.system.chat_url, body)
    if status == 200:
        return (
            "needs the request path to apply Route.data_protection: a request with a "
            "deny-listed term was answered 200 (sent upstream unscanned)"
        )
    return None


def _verify_spans(started: Started, ctx: Context) -> str | None:
    assert ctx.otlp_url is not None
    url = ctx.otlp_url
    # The batch span processor exports every 5 s.
    if not _within(lambda: services.sink_stats(url)["exports"] > 0, 12):
        return "no span reached the OTLP collector"
    return None


def _verify_counters(started: Started, ctx: Context) -> str | None:
    port = ctx.redis_port
    assert port is not None
    # the probe request's cost is counted when it ends, maybe just after its answer
    if not _within(lambda: int(services.redis_command(port, "DBSIZE") or 0) > 0, 3):
        return "config accepted, but the sidecar kept no counter in Redis (limits not enforced)"
    return None


VARIANTS: tuple[Variant, ...] = (
    Variant("standard", "as benchmarked (residency, audit to a file, metrics)",
            verify=_verify_audit_file),
    Variant("no_residency", "route without residency", edit=_no_residency,
            verify=_verify_audit_file),
    Variant("audit_stdout", "audit to stdout (a pipe read by another process)", audit="stdout",
            verify=_verify_audit_stdout),
    Variant("audit_off", "audit off", audit="off", verify=_verify_audit_off,
            switch="AIGUILLAGE_AUDIT_LOG=off"),
    Variant("metrics_off", "metrics off", env=lambda ctx: {"AIGUILLAGE_METRICS": "off"},
            verify=_verify_metrics_off, switch="AIGUILLAGE_METRICS=off"),
    Variant("tracing", "tracing to a local OTLP/HTTP collector", env=_tracing_env,
            requires=_requires_otlp, verify_after=_verify_spans),
    Variant("redis_budget", "monthly budget counted in a local Redis", edit=_with_budget,
            requires=_requires_redis, verify=_verify_counters),
    Variant("data_protection", "data-protection rules on the route",
            edit=_with_data_protection, verify=_verify_data_protection),
)  # fmt: skip
VARIANT = {v.key: v for v in VARIANTS}

FEATURES: tuple[Feature, ...] = (
    Feature("residency", "Residency checks (EU-only route, 2 targets)", "standard",
            "no_residency", max_throughput_cost=0.10),
    Feature("audit_file", "Audit to a file (vs off)", "standard", "audit_off",
            max_throughput_cost=0.10),
    Feature("audit_stdout", "Audit to stdout (vs off)", "audit_stdout", "audit_off",
            max_throughput_cost=0.10),
    Feature("audit_stdout_vs_file", "Audit to stdout instead of a file", "audit_stdout",
            "standard"),
    Feature("metrics", "Metrics (vs off)", "standard", "metrics_off", max_throughput_cost=0.10),
    Feature("tracing", "Tracing on (OTLP/HTTP to a local collector)", "tracing", "standard"),
    Feature("redis_budget", "Budget check in Redis", "redis_budget", "standard"),
    Feature("data_protection", "Data-protection scan (1 KB prompt with personal data)",
            "data_protection", "standard", body="personal"),
)  # fmt: skip
FEATURE = {f.key: f for f in FEATURES}


def personal_body() -> bytes:
    """About 1 KB of user message holding e-mails, phones, an IBAN, a card...: what the
    data-protection variant scans (and its baseline sends too)."""
    from aiguillage.devtools.bench import privacy

    text = privacy.text_of(privacy.PERSONAL, 1024)
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]}).encode()


# -- starting and checking variants --------------------------------------------------------------


def _write_config(base: Path, root: Path, variant: Variant, ctx: Context) -> None:
    from aiguillage.sidecar.config import CONFIG_FILE, SidecarConfig

    shutil.copytree(base / "credentials", root / "credentials")
    (root / "config").mkdir(parents=True)
    config = json.loads((base / "config" / CONFIG_FILE).read_text())
    if variant.edit is not None:
        config = variant.edit(config, ctx)
    sealed = SidecarConfig.model_validate(config).sealed()
    (root / "config" / CONFIG_FILE).write_bytes(sealed.to_json())


def start_variant(variant: Variant, base: Path, ctx: Context) -> Started:
    root = ctx.workdir / "features" / variant.key
    root.mkdir(parents=True)
    _write_config(base, root, variant, ctx)
    env = sidecar_env(root / "audit.jsonl")
    if variant.audit == "stdout":
        del env["AIGUILLAGE_AUDIT_LOG"]
    elif variant.audit == "off":
        env["AIGUILLAGE_AUDIT_LOG"] = "off"
    if variant.env is not None:
        env.update(variant.env(ctx))
    system = run_sidecar(
        ctx.procs, root / "config", f"sidecar-{variant.key}", env, cpus=ctx.cpus,
        stdout_pipe=variant.audit == "stdout", cwd=root,
    )  # fmt: skip
    assert system.proc is not None
    started = Started(variant, system, root, system.proc.log_path)
    if variant.audit == "stdout":
        started.drain = ctx.procs.drain(
            system.proc, f"drain-{variant.key}", started.stdout_file, cpus=ctx.aux_cpus
        )
    return started


def check_variant(started: Started, ctx: Context) -> str | None:
    """One ordinary request must be answered 200, then the variant's own check must pass."""
    status, answer = http_request(started.system.chat_url, request_body(False))
    if status != 200:
        return f"a probe request was answered {status}: {answer[:200]!r}"
    if started.variant.verify is not None:
        return started.variant.verify(started, ctx)
    return None


# -- measuring -----------------------------------------------------------------------------------


def schedule(
    feats: list[Feature], round_no: int
) -> list[tuple[Feature, tuple[tuple[str, str], tuple[str, str]]]]:
    """One round's runs: each feature's off and on variants back to back (their order
    alternating between rounds), the features in an order rotated by round."""
    shift = round_no % len(feats) if feats else 0
    out = []
    for feature in feats[shift:] + feats[:shift]:
        off, on = (feature.off, feature.body), (feature.on, feature.body)
        out.append((feature, (off, on) if round_no % 2 == 0 else (on, off)))
    return out


def paired_costs(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """A feature's cost from its (on, off) runs, one pair per round: the median over rounds of
    each round's ratio and differences. A pair where either run failed is left out."""

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    def good(run: dict[str, Any]) -> bool:
        return bool(run.get("completed", 0) > run.get("errors", 0) and run.get("rps"))

    ok = [(on, off) for on, off in pairs if good(on) and good(off)]
    return {
        "rounds": len(ok),
        "rps_ratio": med([on["rps"] / off["rps"] for on, off in ok]),
        "added_p50_ms": med([on["latency_ms"]["p50"] - off["latency_ms"]["p50"] for on, off in ok]),
        "added_p99_ms": med([on["latency_ms"]["p99"] - off["latency_ms"]["p99"] for on, off in ok]),
        "cpu_us_added": med(
            [on["cpu_us_per_request"] - off["cpu_us_per_request"] for on, off in ok]
        ),
        # the throughput a core given to the sidecar alone would keep: off's CPU per request
        # over on's (req/s above also moves with whatever else the machine runs meanwhile)
        "cpu_rps_ratio": med(
            [
                off["cpu_us_per_request"] / on["cpu_us_per_request"]
                for on, off in ok
                if on["cpu_us_per_request"] > 0
            ]
        ),
        "on_rps": med([on["rps"] for on, _ in ok]),
        "off_rps": med([off["rps"] for _, off in ok]),
        "rps_ratio_runs": [round(on["rps"] / off["rps"], 3) for on, off in ok],
    }


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one (variant, body, concurrency)."""

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    ok = [r for r in runs if r.get("completed", 0) > r.get("errors", 0)]
    return {
        "rounds": len(runs),
        "rps": med([r["rps"] for r in ok]),
        "p50_ms": med([r["latency_ms"]["p50"] for r in ok]),
        "p99_ms": med([r["latency_ms"]["p99"] for r in ok]),
        "cpu_us_per_request": med([r["cpu_us_per_request"] for r in ok]),
        "errors": sum(r.get("errors", 0) for r in runs),
        "rps_runs": [r["rps"] for r in runs],
    }


def run_features(
    procs: Procs,
    upstream_url: str,
    gen: LoadGenerator,
    plan: Plan,
    layout: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """Start every variant, check it, measure the pairs the features need, report all."""
    ctx = Context(procs, upstream_url, workdir, layout["proxy_cpus"], layout["load_cpus"])
    base = workdir / "features" / "base"
    render_sidecar_config(upstream_url, base)
    _start_services(ctx)
    bodies = {"plain": workdir / "body.json", "personal": workdir / "body-personal.json"}
    bodies["plain"].write_bytes(request_body(False))
    bodies["personal"].write_bytes(personal_body())
    variants: dict[str, dict[str, Any]] = {}
    started: dict[str, Started] = {}
    for variant in VARIANTS:
        info: dict[str, Any] = {"label": variant.label, "switch": variant.switch}
        variants[variant.key] = info
        reason = variant.requires(ctx) if variant.requires else None
        if reason is None:
            try:
                started[variant.key] = start_variant(variant, base, ctx)
            except Exception as exc:  # a config the sidecar model refuses, a start that fails
                reason = f"did not start: {type(exc).__name__}: {exc}"
        if reason is None:
            reason = check_variant(started[variant.key], ctx)
        if reason is not None:
            info["unavailable"] = reason
            say(f"  feature variant {variant.key}: not measured: {reason}")
            if variant.key in started:
                _stop(started.pop(variant.key), procs)
            continue
        idle = started[variant.key].system.idle
        info["idle_rss_mb"] = idle.rss_mb if idle else None
        say(f"  feature variant {variant.key}: ready, idle RSS {info['idle_rss_mb']} MB")
    measurable = [f for f in FEATURES if f.on in started and f.off in started]
    measured, paired = _measure(started, measurable, bodies, gen, plan, ctx)
    for key, one in started.items():
        if one.variant.verify_after is not None:
            reason = one.variant.verify_after(one, ctx)
            if reason is not None:
                variants[key]["unavailable"] = reason
                say(f"  feature variant {key}: measured but not valid: {reason}")
    if ctx.otlp_url:
        variants["tracing"]["collector"] = services.sink_stats(ctx.otlp_url)
    for one in started.values():
        _stop(one, procs)
    return {
        "concurrencies": list(plan.feature_concurrencies),
        "rounds": plan.feature_rounds,
        "loads": {str(c): vars(plan.feature_loads[c]) for c in plan.feature_concurrencies},
        "variants": variants,
        "measured": measured,
        "paired": paired,
        "features": [
            {
                "key": f.key,
                "label": f.label,
                "on": f.on,
                "off": f.off,
                "body": f.body,
                "max_throughput_cost": f.max_throughput_cost,
            }
            for f in FEATURES
        ],
    }


def _start_services(ctx: Context) -> None:
    if _requires_otlp(ctx) is None:
        try:
            _, ctx.otlp_url = services.start_otlp_sink(ctx.procs, cpus=ctx.aux_cpus)
        except services.ServiceError as exc:
            ctx.service_errors["otlp"] = str(exc)
    if _limits_supported() is None:
        try:
            _, ctx.redis_port = services.start_redis(ctx.procs, ctx.workdir, cpus=ctx.aux_cpus)
        except services.ServiceError as exc:
            ctx.service_errors["redis"] = str(exc)


def _measure(
    started: dict[str, Started],
    feats: list[Feature],
    bodies: dict[str, Path],
    gen: LoadGenerator,
    plan: Plan,
    ctx: Context,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every run per (variant, body, concurrency) summarized, and each feature's paired cost
    per concurrency."""
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    pairs: dict[tuple[str, int], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for c in plan.feature_concurrencies:
        load = plan.feature_loads[c]
        for round_no in range(plan.feature_rounds):
            for feature, order in schedule(feats, round_no):
                cells: dict[tuple[str, str], dict[str, Any]] = {}
                for key, body in order:
                    cell = _one_run(started[key], bodies[body], gen, c, load, plan, ctx)
                    cells[(key, body)] = cell
                    runs.setdefault((key, body, c), []).append(cell)
                    say(
                        f"  {feature.key:<16} {key:<16} {body:<8} c={c:<3} "
                        f"round {round_no + 1}: {cell['rps']:.0f} req/s "
                        f"p50={cell['latency_ms']['p50']:.2f}ms "
                        f"p99={cell['latency_ms']['p99']:.2f}ms "
                        f"cpu={cell['cpu_us_per_request']:.0f}us/req errors={cell['errors']}"
                    )
                on, off = cells[(feature.on, feature.body)], cells[(feature.off, feature.body)]
                pairs.setdefault((feature.key, c), []).append((on, off))
    measured: dict[str, dict[str, Any]] = {}
    for (key, body, c), cells_of in runs.items():
        measured.setdefault(f"{key}/{body}", {})[str(c)] = summarize_runs(cells_of)
    paired: dict[str, dict[str, Any]] = {}
    for (feature_key, c), of_feature in pairs.items():
        paired.setdefault(feature_key, {})[str(c)] = paired_costs(of_feature)
    return measured, paired


def _one_run(
    started: Started, body: Path, gen: LoadGenerator, c: int, load: Load, plan: Plan, ctx: Context
) -> dict[str, Any]:
    assert started.system.proc is not None
    return run_loadgen(
        gen, started.system, stream=False, c=c, load=load, max_seconds=plan.max_seconds,
        cpus=ctx.aux_cpus, workdir=ctx.workdir, body=body,
    )  # fmt: skip


def _stop(started: Started, procs: Procs) -> None:
    if started.system.proc is not None:
        procs.stop(started.system.proc)
    if started.drain is not None:
        procs.stop(started.drain)
