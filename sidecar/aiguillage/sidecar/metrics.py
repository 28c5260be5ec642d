"""Request, failover, token and cost counters, exported in Prometheus text format.

Updating a metric is a dictionary increment on the request path; rendering the
text happens only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Bucket boundaries the OpenTelemetry GenAI semantic conventions advise.
GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GENAI_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        # the first bucket whose bound is >= value (none past the last: only +Inf counts it)
        i = bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1


@dataclass
class Metrics:
    counters: dict[str, dict[Labels, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    histograms: dict[str, dict[Labels, Histogram]] = field(default_factory=dict)
    # Values replaced as a whole when the state they describe changes (e.g. on a reload).
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def inc(self, name: str, labels: Labels, value: float = 1.0) -> None:
        self.counters[name][labels] += value

    def observe(self, name: str, labels: Labels, value: float) -> None:
        self.histogram(name, labels).observe(value)

    def histogram(self, name: str, labels: Labels) -> Histogram:
        """The series ``labels`` of histogram ``name`` (created empty if new), to observe
        values into directly."""
        series = self.histograms.setdefault(name, {})
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = Histogram(self.buckets.get(name, DURATION_BUCKETS))
        return hist

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set one series of gauge ``name`` (the others stay)."""
        self.gauges.setdefault(name, {})[labels] = value

    def set_gauge(self, name: str, series: dict[Labels, float]) -> None:
        """Replace every series of gauge ``name`` (series not given disappear)."""
        self.gauges[name] = series

    def render(self) -> str:
        lines: list[str] = []
        for kind, values in (("gauge", self.gauges), ("counter", self.counters)):
            for name, series in sorted(values.items()):
                if name in self.help:
                    lines.append(f"# HELP {name} {self.help[name]}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in series.items():
                    lines.append(f"{name}{_fmt(labels)} {value:g}")
        for name, hseries in sorted(self.histograms.items()):
            if name in self.help:
                lines.append(f"# HELP {name} {self.help[name]}")
            lines.append(f"# TYPE {name} histogram")
            for labels, h in hseries.items():
                cumulative = 0
                for bound, n in zip(h.buckets, h.counts or [0] * len(h.buckets), strict=True):
                    cumulative += n
                    lines.append(
                        f"{name}_bucket{_fmt((*labels, ('le', f'{bound:g}')))} {cumulative}"
                    )
                lines.append(f"{name}_bucket{_fmt((*labels, ('le', '+Inf')))} {h.count}")
                lines.append(f"{name}_sum{_fmt(labels)} {h.total:g}")
                lines.append(f"{name}_count{_fmt(labels)} {h.count}")
        return "\n".join(lines) + "\n"


def _fmt(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + inner + "}"


def new_metrics() -> Metrics:
    m = Metrics()
    m.help.update(
        {
            "aiguillage_requests_total": "Client requests by route and outcome.",
            "aiguillage_attempts_total": (
                "Attempts at provider targets by outcome, and where the provider processes "
                "data (location) under which law (jurisdiction)."
            ),
            "aiguillage_targets_skipped_total": (
                "Targets of a route not tried, by reason (residency, circuit_open, "
                "provider_invalid, unsupported)."
            ),
            "aiguillage_circuit_open": (
                "1 while a target's circuit breaker is open (or half open: probing), else 0."
            ),
            "aiguillage_workload_info": "The service account this sidecar's pod runs as.",
            "aiguillage_audit_records_total": "Request records written to the audit chain.",
            "aiguillage_audit_checkpoints_total": "Checkpoints written to the audit chain.",
            "aiguillage_failovers_total": "Requests answered by another target than the first.",
            "aiguillage_cost_eur_total": "Cost of answered requests in euros.",
            "aiguillage_config_reloads_total": "Config reloads by result (ok, invalid, error).",
            "aiguillage_config_providers_unusable": (
                "Providers of the served config whose targets are skipped (bad options or "
                "credential), 1 per provider."
            ),
            "aiguillage_policy_findings_total": (
                "Attempts at targets an Audit-mode AIPolicy would have kept out, by policy."
            ),
            "aiguillage_data_protection_findings_total": (
                "Personal data found in requests, by category and by the action taken on the "
                "body the answer came from (audit, pseudonymise, redact, block); once per request."
            ),
            "aiguillage_limit_refusals_total": (
                "Requests refused (429) by a rate limit or budget in Enforce mode."
            ),
            "aiguillage_limit_audit_total": (
                "Requests an Audit-mode rate limit or budget would have refused (served)."
            ),
            "aiguillage_limit_store_unavailable_total": (
                "Limits met while the shared store could not be reached, by result "
                "(refused: fails closed; counted_locally: fails open)."
            ),
            "aiguillage_budget_spend_eur": (
                "Month-to-date spend of a budget's counter, as this sidecar last saw it."
            ),
            "aiguillage_budget_limit_eur": "Monthly budget in euros, by policy and subject.",
            "aiguillage_shared_store_errors_total": (
                "Failed calls to the shared store of limits, by operation."
            ),
            "gen_ai_client_token_usage": "Tokens used per request (gen_ai.client.token.usage).",
            "gen_ai_client_operation_duration_seconds": (
                "Duration of GenAI operations (gen_ai.client.operation.duration)."
            ),
        }
    )
    # Exported at 0 from the start: a counter that appears at 1 hides its first event from
    # increase() and rate(), and alerts on config rejections need that first one.
    for result in ("ok", "invalid", "error"):
        m.inc("aiguillage_config_reloads_total", (("result", result),), 0)
    m.buckets.update(
        {
            "gen_ai_client_token_usage": GENAI_TOKEN_BUCKETS,
            "gen_ai_client_operation_duration_seconds": GENAI_DURATION_BUCKETS,
        }
    )
    return m
