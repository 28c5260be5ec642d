"""Traces (a span per request, a child per attempt) with the GenAI semantic conventions,
and the request metrics built from each request's audit record."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for
from aiguillage.sidecar import telemetry
from aiguillage.sidecar.audit import AttemptRecord, AuditRecord
from aiguillage.sidecar.metrics import new_metrics
from aiguillage.sidecar.privacy.rules import DataProtectionRules
from tests.sidecar.conftest import (
    MESSAGES,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
    us_target,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_request_span_with_a_child_per_attempt(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    exporter = InMemorySpanExporter()
    sidecar = start_sidecar(
        two_provider_config(eu, us, route("chat", eu_target(0), us_target(1))),
        span_exporter=exporter,
    )
    eu.set_faults([{"kind": "status", "status": 503}])
    raw = sidecar.client(
        default_headers={"traceparent": TRACEPARENT}
    ).chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    assert raw.headers["x-aiguillage-attempts"] == "2"

    def finished() -> list[object] | None:
        sidecar.runtime.telemetry._provider.force_flush()  # type: ignore[union-attr]
        spans = exporter.get_finished_spans()
        return list(spans) if len(spans) == 3 else None

    spans = wait_for(finished, timeout=10, what="three spans")
    by_name = {s.name: s for s in spans}  # type: ignore[attr-defined]
    request = by_name["chat chat"]
    assert request.kind is SpanKind.SERVER
    assert request.attributes["gen_ai.operation.name"] == "chat"
    assert request.attributes["gen_ai.request.model"] == "chat"
    assert request.attributes["gen_ai.usage.output_tokens"] == 8
    assert request.attributes["aiguillage.attempts"] == 2
    # The client's trace continues through the sidecar.
    assert format(request.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert request.parent.span_id == int("00f067aa0ba902b7", 16)

    failed, answered = by_name["attempt mistral-eu"], by_name["attempt openai-us"]
    for child in (failed, answered):
        assert child.parent.span_id == request.context.span_id
        assert child.kind is SpanKind.CLIENT
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 503
    assert answered.attributes["aiguillage.location"] == "US"
    assert failed.start_time <= answered.start_time <= request.end_time


def test_no_exporter_means_no_tracing(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sidecar = start_sidecar(two_provider_config(eu, us, route("chat", eu_target(0))))
    assert sidecar.runtime.telemetry._provider is None


def test_data_protection_counts_on_the_spans_never_values(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    rules = DataProtectionRules.model_validate(
        {"rules": [{"categories": ["email"], "action": "pseudonymise"}]}
    )
    protected = route("chat", us_target(0)).model_copy(update={"data_protection": rules})
    exporter = InMemorySpanExporter()
    sidecar = start_sidecar(two_provider_config(eu, us, protected), span_exporter=exporter)
    sidecar.client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Mail a@example.eu and b@example.eu"}]
    )

    def finished() -> list[object] | None:
        sidecar.runtime.telemetry._provider.force_flush()  # type: ignore[union-attr]
        spans = exporter.get_finished_spans()
        return list(spans) if len(spans) == 2 else None

    by_name = {s.name: s for s in wait_for(finished, timeout=10, what="two spans")}
    assert by_name["chat chat"].attributes["aiguillage.data_protection.found"] == 2
    attempt = by_name["attempt openai-us"].attributes
    assert attempt["aiguillage.data_protection.findings"] == 2
    assert attempt["aiguillage.data_protection.actions"] == ("email:pseudonymise=2",)
    assert "example.eu" not in str([dict(s.attributes) for s in by_name.values()])


# -- metrics built from the audit record, and read at scrape time ----------------------------


def test_attempts_say_where_and_under_which_law_and_skips_say_why(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    from aiguillage.sidecar.config import Residency

    sidecar = start_sidecar(
        two_provider_config(
            eu,
            us,
            route("chat", eu_target(0), us_target(1)),
            route(
                "eu", us_target(0), eu_target(1), residency=Residency(locations=frozenset({"FR"}))
            ),
        )
    )
    eu.set_faults([{"kind": "status", "status": 503}])
    # On "chat" mistral-eu fails and openai-us answers; on "eu" openai-us is skipped.
    sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)
    sidecar.client().chat.completions.create(model="eu", messages=MESSAGES)
    wait_for(lambda: sidecar.metric("aiguillage_targets_skipped_total") > 0, 10, what="metrics")
    attempts = {
        labels: sidecar.metric("aiguillage_attempts_total", **dict(labels))
        for labels in (
            (("provider", "mistral-eu"), ("outcome", "http_error"), ("location", "FR"),
             ("jurisdiction", "FR")),
            (("provider", "openai-us"), ("outcome", "ok"), ("location", "US"),
             ("jurisdiction", "US")),
            (("provider", "mistral-eu"), ("outcome", "ok"), ("location", "FR"),
             ("jurisdiction", "FR")),
        )
    }  # fmt: skip
    assert list(attempts.values()) == [1, 1, 1]
    assert (
        sidecar.metric(
            "aiguillage_targets_skipped_total", route="eu", provider="openai-us", reason="residency"
        )
        == 1
    )
    assert sidecar.metric("aiguillage_failovers_total", route="chat") == 1


def test_circuit_state_is_a_gauge_read_at_scrape_time(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    from aiguillage.sidecar.config import CircuitBreaker

    sidecar = start_sidecar(
        two_provider_config(
            eu,
            us,
            route(
                "chat",
                eu_target(0),
                us_target(1),
                circuit_breaker=CircuitBreaker(consecutive_failures=2, cooldown=0.2),
            ),
        )
    )
    client = sidecar.client()
    eu.set_faults([{"kind": "status", "status": 503}] * 2)
    for _ in range(2):
        client.chat.completions.create(model="chat", messages=MESSAGES)
    labels = {"provider": "mistral-eu", "model": "mistral-small-latest"}
    assert sidecar.metric("aiguillage_circuit_open", **labels) == 1
    assert sidecar.metric("aiguillage_circuit_open", provider="openai-us") == 0

    def recovered() -> bool:
        # After the cooldown, one request probes mistral-eu again, which now answers.
        client.chat.completions.create(model="chat", messages=MESSAGES)
        return sidecar.metric("aiguillage_circuit_open", **labels) == 0

    wait_for(recovered, timeout=10, what="the circuit to close again")


def test_the_workload_and_the_audit_chain_are_in_the_metrics(
    monkeypatch: pytest.MonkeyPatch,
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    from aiguillage.sidecar.auditchain import ChainSettings

    monkeypatch.setenv("POD_SERVICE_ACCOUNT", "summarizer")
    sidecar = start_sidecar(
        two_provider_config(eu, us, route("chat", eu_target(0))),
        audit_chain=ChainSettings("/nonexistent.pem", every_records=2),
    )
    for _ in range(3):
        sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)
    sidecar.wait_audit(3)
    assert sidecar.metric("aiguillage_workload_info", service_account="summarizer") == 1
    assert sidecar.metric("aiguillage_audit_records_total") == 3
    assert sidecar.metric("aiguillage_audit_checkpoints_total") >= 1


def test_metrics_off_counts_no_request(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    from aiguillage.sidecar.main import ServeOptions

    sidecar = start_sidecar(
        two_provider_config(eu, us, route("chat", eu_target(0))),
        serving=ServeOptions(metrics=False),
    )
    sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)
    sidecar.wait_audit(1)  # the request is over, its telemetry step too

    text = sidecar.metrics()
    assert "aiguillage_requests_total{" not in text
    assert "gen_ai_client_operation_duration_seconds" not in text
    assert "aiguillage_config_reloads_total" in text  # the sidecar's own counters remain


# -- metrics -------------------------------------------------------------------------------------


def _record(*attempts: AttemptRecord, outcome: str = "ok", cost: str | None = "0.5") -> AuditRecord:
    record = AuditRecord(
        time=0.0, request_id="r", namespace="ns", pod="p", route="chat", model="chat",
        operation="chat.completions", stream=False, residency={}, attempts=list(attempts),
        outcome=outcome, input_tokens=10, output_tokens=300,
        cost_eur=None if cost is None else Decimal(cost),
    )  # fmt: skip
    return record


def _attempt(provider: str, outcome: str, location: str = "FR") -> AttemptRecord:
    return AttemptRecord(provider, "m-" + provider, location, location, outcome)


def _series(lines: list[str], prefix: str) -> list[str]:
    return sorted(line for line in lines if line.startswith(prefix))


def test_requests_of_the_same_kind_add_up_and_other_kinds_get_their_own_series() -> None:
    tel = telemetry.Telemetry(new_metrics(), exporter=None)
    answered = _record(_attempt("fr", "ok"))
    failed_over = _record(
        _attempt("us", "skipped_residency", "US"), _attempt("fr", "http_error"),
        _attempt("de", "ok", "DE"), cost="0.25",
    )  # fmt: skip
    refused = _record(_attempt("us", "skipped_residency", "US"), outcome="no_target", cost=None)
    for record, seconds in ((answered, 0.2), (failed_over, 3.0), (answered, 0.3), (refused, 0.0)):
        tel.finished(record, 0, int(seconds * 1e9), None)
    lines = tel.metrics.render().splitlines()
    assert _series(lines, "aiguillage_requests_total{") == [
        'aiguillage_requests_total{route="chat",outcome="no_target"} 1',
        'aiguillage_requests_total{route="chat",outcome="ok"} 3',
    ]
    assert _series(lines, "aiguillage_attempts_total{") == [
        'aiguillage_attempts_total{provider="de",model="m-de",outcome="ok",location="DE",'
        'jurisdiction="DE"} 1',
        'aiguillage_attempts_total{provider="fr",model="m-fr",outcome="http_error",'
        'location="FR",jurisdiction="FR"} 1',
        'aiguillage_attempts_total{provider="fr",model="m-fr",outcome="ok",location="FR",'
        'jurisdiction="FR"} 2',
    ]
    assert _series(lines, "aiguillage_targets_skipped_total{") == [
        'aiguillage_targets_skipped_total{route="chat",provider="us",reason="residency"} 2'
    ]
    assert _series(lines, "aiguillage_failovers_total{") == [
        'aiguillage_failovers_total{route="chat"} 1'
    ]
    assert _series(lines, "aiguillage_cost_eur_total{") == [
        'aiguillage_cost_eur_total{route="chat",provider="de",model="m-de"} 0.25',
        'aiguillage_cost_eur_total{route="chat",provider="fr",model="m-fr"} 1',
    ]
    fr = 'gen_ai_provider_name="fr",gen_ai_request_model="chat",gen_ai_response_model="m-fr"'
    duration = "gen_ai_client_operation_duration_seconds"
    assert f'{duration}_count{{gen_ai_operation_name="chat",{fr}}} 2' in lines
    assert f'{duration}_sum{{gen_ai_operation_name="chat",{fr}}} 0.5' in lines
    assert f'{duration}_bucket{{gen_ai_operation_name="chat",{fr},le="0.32"}} 2' in lines
    tokens = f'gen_ai_client_token_usage_sum{{gen_ai_operation_name="chat",{fr}'
    assert f'{tokens},gen_ai_token_type="output"}} 600' in lines
    assert f'{tokens},gen_ai_token_type="input"}} 20' in lines
    # the request no target was contacted for has no duration or tokens
    assert not [line for line in lines if "gen_ai" in line and 'provider_name="us"' in line]


def test_counts_stay_right_past_the_number_of_kinds_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "MAX_PLANS", 2)
    tel = telemetry.Telemetry(new_metrics(), exporter=None)
    kinds = [_record(_attempt(p, "ok")) for p in ("a", "b", "c")]
    for _ in range(4):
        for record in kinds:
            tel.finished(record, 0, 1_000_000, None)
    assert len(tel._plans) <= 2
    lines = tel.metrics.render().splitlines()
    assert 'aiguillage_requests_total{route="chat",outcome="ok"} 12' in lines
    for p in ("a", "b", "c"):
        assert (
            f'aiguillage_attempts_total{{provider="{p}",model="m-{p}",outcome="ok",'
            f'location="FR",jurisdiction="FR"}} 4'
        ) in lines
        assert (
            f'aiguillage_cost_eur_total{{route="chat",provider="{p}",model="m-{p}"}} 2'
        ) in lines
