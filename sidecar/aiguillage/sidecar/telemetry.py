"""Metrics and traces for each request, recorded after its answer has been sent.

Nothing here runs on a request's critical path: the handler schedules
:meth:`Telemetry.finished` with ``loop.call_soon`` once the response is written,
and builds metrics and spans from the audit record, with the timestamps taken
during the request. Metric names follow the OpenTelemetry GenAI semantic
conventions (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``),
exported in Prometheus form (dots become underscores). Traces (one span per request,
a child per attempt) are produced only when an exporter is configured: the
standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
environment variables, or an exporter handed in by tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiguillage.sidecar import log
from aiguillage.sidecar.audit import AuditRecord
from aiguillage.sidecar.auditchain import AuditChain
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.metrics import Histogram, Labels, Metrics
from aiguillage.sidecar.privacy.findings import FindingsSummary

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Client-facing operation -> gen_ai.operation.name
OPERATION_NAMES = {
    "chat.completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}


POLICY_FINDINGS = "aiguillage_policy_findings_total"
DATA_PROTECTION_FINDINGS = "aiguillage_data_protection_findings_total"


def _contacted(record: AuditRecord) -> list[Any]:
    return [a for a in record.attempts if not a.outcome.startswith("skipped")]


# Kinds of request whose series are kept looked up (see Telemetry._metrics); past this many
# (labels a config cannot produce: they are bounded by its routes, targets and outcomes)
# the lookups start again.
MAX_PLANS = 4096


@dataclass(slots=True)
class _SeriesPlan:
    """The series one kind of request updates: counters incremented by one, the duration
    histogram (once a target was contacted), token histograms and cost counter (answered)."""

    route: str
    counts: tuple[tuple[dict[Labels, float], Labels], ...]
    duration: Histogram | None = None
    tokens: tuple[Histogram, Histogram] | None = None
    cost: tuple[dict[Labels, float], Labels] | None = None


def _series_key(record: AuditRecord) -> tuple[Any, ...]:
    """Everything the labels of a request's series come from."""
    return (
        record.route,
        record.outcome,
        record.operation,
        record.model,
        *[(a.provider, a.model, a.outcome, a.location, a.jurisdiction) for a in record.attempts],
    )


class Telemetry:
    """``record_metrics`` False (``AIGUILLAGE_METRICS=off``): requests are not counted in
    ``/metrics`` (for measuring what metrics cost; config and audit counters remain)."""

    def __init__(
        self, metrics: Metrics, exporter: SpanExporter | None = None, record_metrics: bool = True
    ) -> None:
        self.metrics = metrics
        self.record_metrics = record_metrics
        self._plans: dict[tuple[Any, ...], _SeriesPlan] = {}
        self._provider: TracerProvider | None = None
        if exporter is None:
            exporter = _exporter_from_environment()
        if exporter is not None:
            self._provider = _tracer_provider(exporter)
            self._tracer = self._provider.get_tracer("aiguillage.sidecar")

    @property
    def tracing(self) -> bool:
        return self._provider is not None

    def finished(
        self, record: AuditRecord, start_ns: int, end_ns: int, headers: Mapping[str, str] | None
    ) -> None:
        """Record one finished request (called after its response was sent)."""
        if self.record_metrics:
            self._metrics(record, (end_ns - start_ns) / 1e9)
        if self._provider is not None:
            try:
                self._spans(record, start_ns, end_ns, headers or {})
            except Exception:  # telemetry must never break serving
                log.server.exception("could not record trace")

    def observe_state(
        self, health: HealthBoard, chain: AuditChain | None, service_account: str
    ) -> None:
        """Values read when ``/metrics`` is scraped (not kept up to date per request): each
        target's circuit, how far the audit chain has gone, and the calling workload."""
        m = self.metrics
        m.set_gauge(
            "aiguillage_circuit_open",
            {
                (("provider", provider), ("model", model)): float(h.opened_at is not None)
                for (provider, model), h in list(health.targets.items())
            },
        )
        # One series per sidecar, for joins: the pod's service account (its namespace and
        # pod come from the scrape's target labels).
        m.set_gauge("aiguillage_workload_info", {(("service_account", service_account),): 1.0})
        if chain is not None:
            m.counters["aiguillage_audit_records_total"][()] = chain.records
            m.counters["aiguillage_audit_checkpoints_total"][()] = chain.checkpoints

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()

    def _metrics(self, record: AuditRecord, seconds: float) -> None:
        # The series a request updates depend only on its labels: looked up once per kind of
        # request (route, outcome, attempts...), then each request is a few increments.
        key = _series_key(record)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:  # bounded, whatever the labels seen
                self._plans.clear()
            plan = self._plans[key] = self._plan(record)
        for series, labels in plan.counts:
            series[labels] += 1
        if plan.duration is not None:
            plan.duration.observe(seconds)
        if plan.tokens is not None:
            plan.tokens[0].observe(record.input_tokens)
            plan.tokens[1].observe(record.output_tokens)
        if plan.cost is not None and record.cost_eur is not None:
            series, labels = plan.cost
            series[labels] += float(record.cost_eur)
        # What varies from one request of a kind to the next (config reloads, bodies).
        m = self.metrics
        for a in record.attempts:
            if a.policy_findings and not a.outcome.startswith("skipped"):
                for finding in a.policy_findings:
                    m.inc(POLICY_FINDINGS, (("policy", finding.policy), ("route", plan.route)))
        # Once per request: what was done to the body the client's answer came from.
        applied = record.applied_data_protection()
        if applied is not None:
            for pairs, n in applied.metric_labels():
                m.inc(DATA_PROTECTION_FINDINGS, pairs, n)

    def _plan(self, record: AuditRecord) -> _SeriesPlan:
        """The series a request like ``record`` updates (see :func:`_series_key`)."""
        m = self.metrics
        counters = m.counters
        route = record.route or ""
        counts: list[tuple[dict[Labels, float], Labels]] = [
            (
                counters["aiguillage_requests_total"],
                (("route", route), ("outcome", record.outcome)),
            )
        ]
        contacted = _contacted(record)
        for a in record.attempts:
            if a.outcome.startswith("skipped"):
                counts.append(
                    (
                        counters["aiguillage_targets_skipped_total"],
                        (("route", route), ("provider", a.provider), ("reason", a.outcome[8:])),
                    )
                )
                continue
            # Location and jurisdiction are country codes (or EU, GLOBAL...): bounded.
            counts.append(
                (
                    counters["aiguillage_attempts_total"],
                    (
                        ("provider", a.provider),
                        ("model", a.model),
                        ("outcome", a.outcome),
                        ("location", a.location or ""),
                        ("jurisdiction", a.jurisdiction or ""),
                    ),
                )
            )
        if len(contacted) > 1:
            counts.append((counters["aiguillage_failovers_total"], (("route", route),)))
        plan = _SeriesPlan(route, tuple(counts))
        if not contacted:
            return plan
        last = contacted[-1]
        labels: Labels = (
            ("gen_ai_operation_name", OPERATION_NAMES.get(record.operation, record.operation)),
            ("gen_ai_provider_name", last.provider),
            ("gen_ai_request_model", record.model),
            ("gen_ai_response_model", last.model),
        )
        if last.outcome != "ok":
            labels = (*labels, ("error_type", last.outcome))
        plan.duration = m.histogram("gen_ai_client_operation_duration_seconds", labels)
        if last.outcome != "ok":
            return plan
        plan.tokens = (
            m.histogram("gen_ai_client_token_usage", (*labels, ("gen_ai_token_type", "input"))),
            m.histogram("gen_ai_client_token_usage", (*labels, ("gen_ai_token_type", "output"))),
        )
        plan.cost = (
            counters["aiguillage_cost_eur_total"],
            (("route", route), ("provider", last.provider), ("model", last.model)),
        )
        return plan

    def _spans(
        self, record: AuditRecord, start_ns: int, end_ns: int, headers: Mapping[str, str]
    ) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        operation = OPERATION_NAMES.get(record.operation, record.operation)
        parent = propagate.extract(headers)
        span = self._tracer.start_span(
            f"{operation} {record.model}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=start_ns,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": record.model,
                "gen_ai.usage.input_tokens": record.input_tokens,
                "gen_ai.usage.output_tokens": record.output_tokens,
                "aiguillage.request_id": record.request_id,
                "aiguillage.route": record.route or "",
                "aiguillage.namespace": record.namespace,
                "aiguillage.outcome": record.outcome,
                "aiguillage.attempts": len(_contacted(record)),
                "http.response.status_code": record.status,
            },
        )
        if record.data_found is not None:
            span.set_attribute("aiguillage.data_protection.found", sum(record.data_found.values()))
        if record.outcome not in ("ok", "client_closed"):
            span.set_status(Status(StatusCode.ERROR, record.outcome))
            span.set_attribute("error.type", record.outcome)
        ctx = trace.set_span_in_context(span)
        for a in record.attempts:
            begin = a.start_ns or start_ns
            child = self._tracer.start_span(
                f"attempt {a.provider}",
                context=ctx,
                kind=SpanKind.CLIENT,
                start_time=begin,
                attributes={
                    "gen_ai.provider.name": a.provider,
                    "gen_ai.response.model": a.model,
                    "aiguillage.location": a.location or "",
                    "aiguillage.jurisdiction": a.jurisdiction or "",
                    "aiguillage.outcome": a.outcome,
                    **({"http.response.status_code": a.status} if a.status else {}),
                    **_data_protection_attributes(a.data_protection),
                },
            )
            if a.outcome not in ("ok",):
                child.set_status(Status(StatusCode.ERROR, a.outcome))
            child.end(end_time=begin + int(a.latency_ms * 1e6))
        span.end(end_time=end_ns)


def _data_protection_attributes(summary: FindingsSummary | None) -> dict[str, Any]:
    """An attempt span's data-protection counts: ``category:action=n`` strings, no values."""
    if summary is None:
        return {}
    return {
        "aiguillage.data_protection.findings": summary.total,
        "aiguillage.data_protection.actions": [
            f"{category}:{action}={n}"
            for category, actions in summary.as_audit_dict().items()
            for action, n in actions.items()
        ],
    }


def _exporter_from_environment() -> SpanExporter | None:
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.server.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http is "
            "not installed (pip install 'aiguillage[otlp]'); traces are off"
        )
        return None
    return OTLPSpanExporter()


def _tracer_provider(exporter: SpanExporter) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "aiguillage-sidecar")}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
