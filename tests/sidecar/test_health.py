"""Circuit breakers and latency (``health.py``): the state machine, then what apps see."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import CircuitBreaker
from aiguillage.sidecar.health import HealthBoard, TargetHealth
from tests.sidecar.conftest import (
    MESSAGES,
    RunningSidecar,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
    us_target,
)

POLICY = CircuitBreaker(consecutive_failures=3, cooldown=10)


# -- the state machine ---------------------------------------------------------------------------


def test_opens_after_n_consecutive_failures() -> None:
    h = TargetHealth()
    h.failed(0, POLICY)
    h.failed(1, POLICY)
    assert h.state == "closed"
    assert h.allow(2, POLICY)
    h.failed(2, POLICY)
    assert h.state == "open"
    assert not h.allow(2, POLICY)
    assert not h.allow(11.9, POLICY)


def test_a_success_resets_the_count() -> None:
    h = TargetHealth()
    h.failed(0, POLICY)
    h.failed(0, POLICY)
    h.succeeded(0.1)
    h.failed(0, POLICY)
    h.failed(0, POLICY)
    assert h.state == "closed"


def test_one_probe_after_cooldown() -> None:
    h = TargetHealth()
    for _ in range(3):
        h.failed(0, POLICY)

    assert h.allow(10, POLICY)  # the probe
    assert h.state == "half_open"
    assert not h.allow(10, POLICY)  # only one at a time
    h.succeeded(0.2)
    assert h.state == "closed"
    assert h.allow(10, POLICY)


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    h = TargetHealth()
    for _ in range(3):
        h.failed(0, POLICY)
    assert h.allow(10, POLICY)
    h.failed(10, POLICY)

    assert h.state == "open"
    assert not h.allow(19.9, POLICY)
    assert h.allow(20, POLICY)


def test_a_released_probe_lets_the_next_request_probe() -> None:
    h = TargetHealth()
    for _ in range(3):
        h.failed(0, POLICY)
    assert h.allow(10, POLICY)
    h.release()

    assert h.allow(10, POLICY)


def test_latency_is_a_moving_average() -> None:
    h = TargetHealth()
    h.succeeded(1.0)
    assert h.latency == 1.0
    h.succeeded(2.0)
    assert h.latency == pytest.approx(1.2)


def test_board_keeps_one_state_per_provider_and_model() -> None:
    board = HealthBoard()
    assert board.of("a", "m") is board.of("a", "m")
    assert board.of("a", "m") is not board.of("a", "n")


# -- what apps see ---------------------------------------------------------------------------------


def ask(sc: RunningSidecar) -> tuple[int, str, dict[str, Any]]:
    """(status, answering provider, audit record) of one chat request."""
    resp = sc.raw("POST", "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES})
    record = sc.audit_for(resp.headers["x-request-id"])
    return resp.status, resp.headers.get("x-aiguillage-provider", ""), record


def outcomes(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["provider"], a["outcome"]) for a in record["attempts"]]


def breaker_sidecar(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator, cooldown: float
) -> RunningSidecar:
    return start_sidecar(
        two_provider_config(
            eu,
            us,
            route(
                "chat",
                eu_target(0),
                us_target(1),
                circuit_breaker=CircuitBreaker(consecutive_failures=2, cooldown=cooldown),
            ),
        )
    )


def open_breaker(sc: RunningSidecar, eu: OpenAISimulator) -> None:
    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
    for _ in range(2):
        _, provider, record = ask(sc)
        assert provider == "openai-us"
        assert outcomes(record) == [("mistral-eu", "http_error"), ("openai-us", "ok")]


def probe_until(sc: RunningSidecar, eu: OpenAISimulator, seen: int, timeout: float = 5) -> Any:
    """Send requests until mistral-eu gets its next one (the probe); return the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ask(sc)
        if len(eu.requests) > seen:
            return answer
        assert outcomes(answer[2])[0] == ("mistral-eu", "skipped_circuit_open")
        time.sleep(0.01)
    raise AssertionError("no probe reached mistral-eu after the cooldown")


def test_open_circuit_skips_the_target_then_probes_after_cooldown(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = breaker_sidecar(start_sidecar, eu, us, cooldown=1.0)
    open_breaker(sc, eu)

    resp = sc.raw("POST", "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES})
    record = sc.audit_for(resp.headers["x-request-id"])
    assert resp.headers["x-aiguillage-provider"] == "openai-us"
    assert resp.headers["x-aiguillage-attempts"] == "1"  # the skipped target is no attempt
    assert outcomes(record) == [("mistral-eu", "skipped_circuit_open"), ("openai-us", "ok")]
    assert len(eu.requests) == 2  # an open circuit sends nothing

    eu.clear_faults()  # the provider recovers
    status, provider, record = probe_until(sc, eu, seen=2)

    assert (status, provider) == (200, "mistral-eu")
    assert outcomes(record) == [("mistral-eu", "ok")]
    assert eu.requests[2].time - eu.requests[1].time >= 1.0 - 0.01
    # closed again: the next request goes straight to the first target
    assert ask(sc)[1] == "mistral-eu"


def test_a_failed_probe_reopens_the_circuit_at_once(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = breaker_sidecar(start_sidecar, eu, us, cooldown=1.0)
    open_breaker(sc, eu)

    _, provider, record = probe_until(sc, eu, seen=2)  # still failing
    assert provider == "openai-us"
    assert outcomes(record) == [("mistral-eu", "http_error"), ("openai-us", "ok")]

    _, _, record = ask(sc)  # one failed probe is enough to reopen
    assert outcomes(record)[0] == ("mistral-eu", "skipped_circuit_open")
    assert len(eu.requests) == 3


def test_a_probe_the_provider_rejects_does_not_wedge_the_circuit(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = breaker_sidecar(start_sidecar, eu, us, cooldown=0.3)
    open_breaker(sc, eu)
    eu.set_faults([{"kind": "status", "status": 400}])  # then healthy

    status, provider, record = probe_until(sc, eu, seen=2)
    assert status == 400  # relayed to the app, as any 400
    assert outcomes(record) == [("mistral-eu", "rejected")]

    # the provider answered, so the next request may probe it again (and succeeds)
    status, provider, record = probe_until(sc, eu, seen=3)
    assert (status, provider) == (200, "mistral-eu")


def test_breaker_counts_failures_per_target_not_per_request(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = breaker_sidecar(start_sidecar, eu, us, cooldown=30)
    eu.set_faults([{"kind": "status", "status": 503}])

    assert ask(sc)[1] == "openai-us"  # one failure
    assert ask(sc)[1] == "mistral-eu"  # success resets the count
    eu.set_faults([{"kind": "status", "status": 503}])
    assert ask(sc)[1] == "openai-us"  # one failure again: still closed
    assert ask(sc)[1] == "mistral-eu"
