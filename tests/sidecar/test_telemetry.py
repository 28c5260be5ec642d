"""Traces (a span per request, a child per attempt) with the GenAI semantic conventions."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.waiting import wait_for
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
