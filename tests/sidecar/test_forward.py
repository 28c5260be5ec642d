"""Failover, retries and deadlines (``forward.py``), seen from the client and the audit log.

Each fault is injected into the first target's simulated provider; the test checks what the app
gets through the openai SDK and that the audit record lists every attempt truthfully.
"""

from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai
import pytest

from aiguillage.devtools.simulators import Fault
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.base import Usage
from aiguillage.sidecar.config import Pricing, Provider, Retry, Route, Target, Timeouts
from aiguillage.sidecar.forward import backoff, cost
from tests.sidecar.conftest import (
    CREDENTIALS,
    EU_MODEL,
    MESSAGES,
    RunningSidecar,
    StartSidecar,
    closed_port,
    eu_target,
    provider_for,
    route,
    two_provider_config,
    us_target,
)

HELLO_EU = "Hello from mistral-eu! This is a simulated answer."
HELLO_US = "Hello from openai-us! This is a simulated answer."
# first_token and stream_idle short so that timeouts are quick (yet far above a simulator's
# answer time, even on a loaded machine); total generous.
TIGHT = Timeouts(connect=1.0, first_token=0.75, stream_idle=0.75, total=8.0)


@dataclass
class Outcome:
    """What the app saw."""

    status: int
    headers: dict[str, str]
    text: str = ""
    error: openai.APIError | None = None


def call(sc: RunningSidecar, *, stream: bool, model: str = "chat", **kw: Any) -> Outcome:
    client = sc.client()
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, stream=stream, **kw
        )
    except openai.APIStatusError as exc:
        return Outcome(exc.status_code, dict(exc.response.headers), error=exc)
    headers = dict(raw.headers)
    if not stream:
        return Outcome(raw.status_code, headers, raw.parse().choices[0].message.content or "")
    pieces: list[str] = []
    try:
        for chunk in raw.parse():
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
    except openai.APIError as exc:
        return Outcome(raw.status_code, headers, "".join(pieces), error=exc)
    return Outcome(raw.status_code, headers, "".join(pieces))


def attempts_of(record: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    return [(a["provider"], a["outcome"], a.get("status")) for a in record["attempts"]]


def fault_sidecar(
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    *,
    first: str = "mistral-eu",
    retry: Retry | None = None,
    timeouts: Timeouts = TIGHT,
) -> RunningSidecar:
    targets = [eu_target(1), us_target(2)]
    if first == "dead":
        targets.insert(0, Target(provider="dead", model="m", priority=0))
    dead = provider_for(
        None, location="FR", jurisdiction="FR", endpoint=f"http://127.0.0.1:{closed_port()}/v1"
    )
    return start_sidecar(
        two_provider_config(
            eu, us, route("chat", *targets, retry=retry, timeouts=timeouts), dead=dead
        )
    )


# -- faults before the first byte: failover ------------------------------------------------------


JSON = {"content-type": "application/json"}
HTML = {"content-type": "text/html"}
SSE = {"content-type": "text/event-stream"}
ANSWER = (
    '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],'
    ' "usage": {"prompt_tokens": PROMPT, "completion_tokens": 1}}'
)
NON_UTF8_EVENT = base64.b64encode(
    b'event: \xff\xfe\ndata: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'
).decode()


@dataclass(frozen=True)
class Failover:
    faults: list[dict[str, Any]]
    stream: bool
    attempts: list[tuple[str, str, int | None]]
    first: str = "mistral-eu"
    retry: int = 1
    # attempts at this outcome took at least this long (ms): the deadline that ended them
    min_latency_ms: dict[str, float] = field(default_factory=dict)


FAILOVERS = {
    "503": Failover(
        [{"kind": "status", "status": 503}],
        False,
        [("mistral-eu", "http_error", 503), ("openai-us", "ok", None)],
    ),
    "500-stream": Failover(
        [{"kind": "status", "status": 500}],
        True,
        [("mistral-eu", "http_error", 500), ("openai-us", "ok", None)],
    ),
    "429-retry-after-no-retry-budget": Failover(
        [{"kind": "status", "status": 429, "retry_after": 1}],
        False,
        [("mistral-eu", "http_error", 429), ("openai-us", "ok", None)],
    ),
    "connect-refused": Failover(
        [],
        False,
        [("dead", "connect_error", None), ("mistral-eu", "ok", None)],
        first="dead",
    ),
    "connect-refused-stream": Failover(
        [],
        True,
        [("dead", "connect_error", None), ("mistral-eu", "ok", None)],
        first="dead",
    ),
    "connection-dropped": Failover(
        [{"kind": "drop"}],
        False,
        [("mistral-eu", "connect_error", None), ("openai-us", "ok", None)],
    ),
    "slow-first-byte": Failover(
        [{"kind": "slow_first_byte", "delay": 5}],
        False,
        [("mistral-eu", "timeout", None), ("openai-us", "ok", None)],
        min_latency_ms={"timeout": 740},
    ),
    "slow-first-byte-stream": Failover(
        [{"kind": "slow_first_byte", "delay": 5}],
        True,
        [("mistral-eu", "timeout", None), ("openai-us", "ok", None)],
        min_latency_ms={"timeout": 740},
    ),
    "invalid-json": Failover(
        [{"kind": "invalid_json"}],
        False,
        [("mistral-eu", "protocol_error", None), ("openai-us", "ok", None)],
    ),
    "body-cut": Failover(
        [{"kind": "reset_mid_stream"}],
        False,
        [("mistral-eu", "protocol_error", None), ("openai-us", "ok", None)],
    ),
    "body-stalls": Failover(
        [{"kind": "stall_mid_stream"}],
        False,
        [("mistral-eu", "timeout", None), ("openai-us", "ok", None)],
        min_latency_ms={"timeout": 740},
    ),
    # A bad key at one provider: next provider, and never the same one again.
    "401-not-retried": Failover(
        [{"kind": "status", "status": 401}],
        False,
        [("mistral-eu", "http_error", 401), ("openai-us", "ok", None)],
        retry=3,
    ),
    "403-not-retried": Failover(
        [{"kind": "status", "status": 403}],
        True,
        [("mistral-eu", "http_error", 403), ("openai-us", "ok", None)],
        retry=3,
    ),
    "503-retried-on-same-target": Failover(
        [{"kind": "status", "status": 503}],
        False,
        [("mistral-eu", "http_error", 503), ("mistral-eu", "ok", None)],
        retry=2,
    ),
    # A provider that does not speak its API: failover at once, never a retry (it would
    # answer the same), and never a redirect followed.
    "redirect-not-followed": Failover(
        [{"kind": "redirect", "status": 308, "location": "http://127.0.0.1:9/v1/x"}],
        False,
        [("mistral-eu", "redirect_refused", 308), ("openai-us", "ok", None)],
        retry=3,
    ),
    "redirect-not-followed-stream": Failover(
        [{"kind": "redirect", "status": 302, "location": "/elsewhere"}],
        True,
        [("mistral-eu", "redirect_refused", 302), ("openai-us", "ok", None)],
        retry=3,
    ),
    "status-101": Failover(
        [{"kind": "raw", "status": 101, "body": ""}],
        True,
        [("mistral-eu", "unexpected_status", 101), ("openai-us", "ok", None)],
        retry=3,
    ),
    "html-200": Failover(
        [{"kind": "raw", "body": "<html>captive portal</html>", "headers": HTML}],
        False,
        [("mistral-eu", "unexpected_content", None), ("openai-us", "ok", None)],
        retry=3,
    ),
    "empty-200": Failover(
        [{"kind": "raw", "body": "", "headers": JSON}],
        False,
        [("mistral-eu", "unexpected_content", None), ("openai-us", "ok", None)],
    ),
    "json-200-to-a-stream": Failover(
        [{"kind": "raw", "body": '{"choices": []}', "headers": JSON}],
        True,
        [("mistral-eu", "unexpected_content", None), ("openai-us", "ok", None)],
    ),
    "endless-body": Failover(
        [{"kind": "flood"}],
        False,
        [("mistral-eu", "response_too_large", None), ("openai-us", "ok", None)],
    ),
    "gzip-bomb": Failover(
        [{"kind": "flood", "encoding": "gzip", "size": 4 * 1024**3}],
        False,
        [("mistral-eu", "response_too_large", None), ("openai-us", "ok", None)],
        retry=3,
    ),
    "endless-sse-line": Failover(
        [{"kind": "flood", "body": "data: ", "content_type": "text/event-stream"}],
        True,
        [("mistral-eu", "response_too_large", None), ("openai-us", "ok", None)],
    ),
    "negative-usage": Failover(
        [{"kind": "raw", "body": ANSWER.replace("PROMPT", "-5"), "headers": JSON}],
        False,
        [("mistral-eu", "protocol_error", None), ("openai-us", "ok", None)],
        retry=3,
    ),
    "absurd-usage": Failover(
        [{"kind": "raw", "body": ANSWER.replace("PROMPT", "1e300"), "headers": JSON}],
        False,
        [("mistral-eu", "protocol_error", None), ("openai-us", "ok", None)],
    ),
    "non-utf8-event-name": Failover(
        [{"kind": "raw", "body_base64": NON_UTF8_EVENT, "headers": SSE}],
        True,
        [("mistral-eu", "protocol_error", None), ("openai-us", "ok", None)],
    ),
}


@pytest.mark.parametrize("case", FAILOVERS.values(), ids=FAILOVERS.keys())
def test_failover_before_first_byte(
    case: Failover, start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(
        start_sidecar,
        eu,
        us,
        first=case.first,
        retry=Retry(attempts=case.retry, backoff_base=0.01, backoff_max=0.02),
    )
    eu.set_faults(case.faults)

    out = call(sc, stream=case.stream)

    answered_by = case.attempts[-1][0]
    assert out.error is None, out.error
    assert out.status == 200
    assert out.text == (HELLO_US if answered_by == "openai-us" else HELLO_EU)
    assert out.headers["x-aiguillage-provider"] == answered_by
    assert out.headers["x-aiguillage-attempts"] == str(len(case.attempts))
    record = sc.audit_for(out.headers["x-request-id"])
    assert attempts_of(record) == case.attempts
    assert record["outcome"] == "ok"
    assert record["stream"] is case.stream
    assert record["usage"]["outputTokens"] == 8
    for attempt in record["attempts"]:
        assert attempt["latencyMs"] >= case.min_latency_ms.get(attempt["outcome"], 0)
    # each provider got exactly the requests the audit says it got
    assert len(eu.requests) == sum(1 for p, _, _ in case.attempts if p == "mistral-eu")
    assert len(us.requests) == sum(1 for p, _, _ in case.attempts if p == "openai-us")
    assert sc.metric("aiguillage_failovers_total", route="chat") == 1


# -- faults after the first byte: the stream ends with an error, no failover ---------------------

MID_STREAM = {
    "stall": {"kind": "stall_mid_stream", "after_chunks": 2},
    "reset": {"kind": "reset_mid_stream", "after_chunks": 2},
    "invalid-json": {"kind": "invalid_json", "after_chunks": 2},
    "in-stream-error": {"kind": "in_stream_error", "after_chunks": 2},
}


@pytest.mark.parametrize("fault", MID_STREAM.values(), ids=MID_STREAM.keys())
def test_stream_broken_after_first_byte_ends_with_an_error(
    fault: dict[str, Any],
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    sc = fault_sidecar(start_sidecar, eu, us)
    eu.set_faults([fault])

    out = call(sc, stream=True)

    assert out.status == 200
    assert out.text == "Hello from mistral-eu! This"  # the two chunks sent before the fault
    # an error event, not a silently truncated answer, and not a dropped connection
    assert out.error is not None
    assert not isinstance(out.error, openai.APIConnectionError)
    assert "provider stream failed" in out.error.message
    record = sc.audit_for(out.headers["x-request-id"])
    assert record["outcome"] == "stream_error"
    assert attempts_of(record) == [("mistral-eu", "stream_error", None)]
    assert record["attempts"][0]["detail"]
    assert us.requests == []  # no failover once the client has bytes
    assert sc.metric("aiguillage_requests_total", route="chat", outcome="stream_error") == 1


def chunk(delta: dict[str, Any], **extra: Any) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


TWO_CHUNKS = chunk({"role": "assistant", "content": "Hello from"}) + chunk(
    {"content": " mistral-eu! This"}
)
HOSTILE_MID_STREAM = {
    "sse-line-too-long": b"data: " + b"x" * (8 * 1024 * 1024 + 1) + b"\n\n",
    "absurd-usage": chunk({}, usage={"prompt_tokens": 3, "completion_tokens": 10**12}),
    "bool-usage": chunk({}, usage={"prompt_tokens": True, "completion_tokens": 2}),
    "choices-not-a-list": b'data: {"choices": 5}\n\n',
    "delta-not-an-object": b'data: {"choices": [{"index": 0, "delta": "x"}]}\n\n',
    "non-utf8-event-name": b"event: \xff\n" + chunk({"content": "!"}),
}


@pytest.mark.parametrize("after", HOSTILE_MID_STREAM.values(), ids=HOSTILE_MID_STREAM.keys())
def test_hostile_data_after_the_first_byte_ends_the_stream_with_an_error(
    after: bytes, start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(start_sidecar, eu, us)
    body = TWO_CHUNKS + after + b"data: [DONE]\n\n"
    eu.set_faults([Fault.raw(body, headers={"content-type": "text/event-stream"})])

    out = call(sc, stream=True, stream_options={"include_usage": True})

    assert out.text == "Hello from mistral-eu! This"
    assert out.error is not None
    assert "provider stream failed" in out.error.message
    record = sc.audit_for(out.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("stream_error", 200)
    assert attempts_of(record) == [("mistral-eu", "stream_error", None)]
    assert record["usage"] == {"inputTokens": 0, "outputTokens": 0}  # never the absurd numbers
    assert us.requests == []


def test_total_deadline_during_a_stream_ends_it_with_an_error(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    eu.configure(chunks=30, chunk_interval=0.1)  # a 3 s answer on a 1 s route deadline
    sc = fault_sidecar(
        start_sidecar, eu, us, timeouts=Timeouts(first_token=0.9, stream_idle=0.9, total=1.0)
    )

    out = call(sc, stream=True)

    assert out.text.startswith("Hello")
    assert out.error is not None
    assert not isinstance(out.error, openai.APIConnectionError)
    record = sc.audit_for(out.headers["x-request-id"])
    assert record["outcome"] == "stream_error"
    assert attempts_of(record) == [("mistral-eu", "timeout", None)]
    assert us.requests == []


def test_total_deadline_before_an_answer_is_502(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(
        start_sidecar, eu, us, timeouts=Timeouts(first_token=5, stream_idle=5, total=0.5)
    )
    eu.set_faults([{"kind": "slow_first_byte", "delay": 5}])

    started = time.monotonic()
    out = call(sc, stream=False)

    assert time.monotonic() - started < 3
    assert out.status == 502
    record = sc.audit_for(out.headers["x-request-id"])
    assert attempts_of(record) == [("mistral-eu", "timeout", None)]
    assert us.requests == []


# -- provider 4xx: relayed, not failed over -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_provider_400_is_relayed_not_failed_over(
    stream: bool, start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(start_sidecar, eu, us, retry=Retry(attempts=3))
    eu.set_faults([{"kind": "status", "status": 400, "message": "messages[0].role is invalid"}])

    out = call(sc, stream=stream)

    assert isinstance(out.error, openai.BadRequestError)
    assert out.status == 400
    assert out.error.body["message"] == "messages[0].role is invalid"  # type: ignore[index]
    assert out.headers["x-aiguillage-provider"] == "mistral-eu"
    record = sc.audit_for(out.headers["x-request-id"])
    assert record["outcome"] == "rejected"
    assert record["status"] == 400
    assert attempts_of(record) == [("mistral-eu", "rejected", 400)]
    assert len(eu.requests) == 1
    assert us.requests == []


# -- everything fails ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_all_targets_failing_is_502_listing_each_attempt(
    stream: bool, start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(start_sidecar, eu, us, first="dead")
    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
    us.set_faults([{"kind": "status", "status": 429}], repeat=True)

    out = call(sc, stream=stream)

    assert isinstance(out.error, openai.APIStatusError)
    assert out.status == 502
    assert out.error.code == "all_targets_failed"
    body: Any = out.error.body
    listed = [(a["provider"], a["outcome"], a.get("status")) for a in body["attempts"]]
    expected = [
        ("dead", "connect_error", None),
        ("mistral-eu", "http_error", 503),
        ("openai-us", "http_error", 429),
    ]
    assert listed == expected
    for provider in ("dead", "mistral-eu", "openai-us"):
        assert provider in out.error.message
    assert out.headers["x-aiguillage-attempts"] == "3"
    record = sc.audit_for(out.headers["x-request-id"])
    assert record["outcome"] == "all_targets_failed"
    assert record["status"] == 502
    assert attempts_of(record) == expected


# -- retries -------------------------------------------------------------------------------------


def test_retry_waits_at_least_retry_after(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(start_sidecar, eu, us, retry=Retry(attempts=2, backoff_base=0.01))
    eu.set_faults([{"kind": "status", "status": 429, "retry_after": 0.6}])

    out = call(sc, stream=False)

    assert out.text == HELLO_EU
    assert out.headers["x-aiguillage-attempts"] == "2"
    first, second = eu.requests
    assert second.time - first.time >= 0.6 - 0.01  # (timestamps are wall clock)
    assert us.requests == []
    record = sc.audit_for(out.headers["x-request-id"])
    assert attempts_of(record) == [("mistral-eu", "http_error", 429), ("mistral-eu", "ok", None)]


def test_retry_after_beyond_the_deadline_fails_over_at_once(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = fault_sidecar(
        start_sidecar,
        eu,
        us,
        retry=Retry(attempts=2),
        timeouts=Timeouts(first_token=2, stream_idle=2, total=5),
    )
    eu.set_faults([{"kind": "status", "status": 429, "retry_after": 60}])

    out = call(sc, stream=False)

    assert out.text == HELLO_US
    (eu_request,) = eu.requests
    (us_request,) = us.requests
    assert us_request.time - eu_request.time < 2


def test_fails_over_down_priority_tiers_in_order(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(
        two_provider_config(
            eu,
            us,
            route(
                "chat",
                us_target(2),
                eu_target(0),
                Target(provider="mistral-eu", model="mistral-large-latest", priority=1),
            ),
        )
    )
    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)

    out = call(sc, stream=False)

    assert out.headers["x-aiguillage-provider"] == "openai-us"
    assert [r.body["model"] for r in eu.requests] == [EU_MODEL, "mistral-large-latest"]


# -- pure helpers ----------------------------------------------------------------------------------


def test_backoff_is_at_least_retry_after_and_bounded_otherwise() -> None:
    r = Route(name="r", targets=(eu_target(),), retry=Retry(backoff_base=0.1, backoff_max=1.0))
    random.seed(7)
    delays = [backoff(r, tries, None) for tries in range(10) for _ in range(50)]

    assert all(0.05 <= d <= 1.0 for d in delays)
    assert max(backoff(r, 0, None) for _ in range(50)) <= 0.1
    assert min(backoff(r, 8, None) for _ in range(50)) >= 0.5  # capped at max, jittered
    assert backoff(r, 0, 3.0) == 3.0


def test_cost_in_euros() -> None:
    priced = eu_target(pricing=Pricing(input_per_million=Decimal("0.2"), output_per_million=6))

    assert cost(priced, Usage(1_000_000, 500_000)) == Decimal("3.2")
    assert cost(eu_target(), Usage(10, 10)) is None


def test_a_wrong_key_fails_over_to_the_next_provider(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(
        two_provider_config(
            eu, us, route("chat", eu_target(0), us_target(1), retry=Retry(attempts=3))
        ),
        {**CREDENTIALS, "mistral-eu": "sk-eu-revoked"},
    )

    out = call(sc, stream=False)

    assert out.text == HELLO_US
    assert len(eu.requests) == 1  # a refused key is not retried on the same provider
    record = sc.audit_for(out.headers["x-request-id"])
    assert attempts_of(record) == [("mistral-eu", "http_error", 401), ("openai-us", "ok", None)]


def test_a_provider_no_adapter_speaks_is_skipped(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    odd = Provider(api="carrier-pigeon", endpoint="http://pigeon.invalid", location="FR")
    sc = start_sidecar(
        two_provider_config(
            eu,
            us,
            route("chat", Target(provider="odd", model="m", priority=0), eu_target(1)),
            odd=odd,
        )
    )

    out = call(sc, stream=False)

    assert out.text == HELLO_EU
    assert out.headers["x-aiguillage-attempts"] == "1"
    record = sc.audit_for(out.headers["x-request-id"])
    assert attempts_of(record) == [("odd", "skipped_unsupported", None), ("mistral-eu", "ok", None)]
    assert 'unsupported api "carrier-pigeon"' in record["attempts"][0]["detail"]
