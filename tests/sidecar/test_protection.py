"""Data protection in the request path (``sidecar/protection.py``), through a real sidecar.

The openai and anthropic SDKs call routes whose rules pseudonymise e-mails and phones,
redact IBANs and block national ids toward targets outside the EU, and only audit inside
it. The simulated providers echo the last text they received, streamed one to three
characters per delta, so what the client gets back shows both what the provider saw and
that placeholders split across deltas are put back whole. What each provider received is
read from its request log.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.config import Provider, Route, Target
from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.errors import PersonalDataBlocked
from aiguillage.sidecar.privacy.rules import DataProtectionRules
from aiguillage.sidecar.protection import THREAD_SCAN_BYTES, scan_request
from tests.sidecar._formats import ROWS
from tests.sidecar.conftest import (
    CLAUDE_MODEL,
    CLIENT_KEY,
    THREE_CREDENTIALS,
    RunningSidecar,
    StartSidecar,
    anthropic_provider,
    eu_target,
    route,
    serving_format,
    two_provider_config,
    us_target,
    wait_for,
)

POLICY = "AIPolicy eu-customer-data"
RULES = DataProtectionRules.model_validate(
    {
        "rules": [
            {"categories": ["email", "phone", "iban", "national_id"], "action": "audit"},
            {
                "categories": ["email", "phone"],
                "action": "pseudonymise",
                "when": {"notJurisdictions": ["EU"]},
                "source": POLICY,
            },
            {
                "categories": ["iban"],
                "action": "redact",
                "when": {"notJurisdictions": ["EU"]},
                "source": POLICY,
            },
            {
                "categories": ["national_id"],
                "action": "block",
                "when": {"notJurisdictions": ["EU"]},
                "source": POLICY,
            },
        ]
    }
)

EMAIL = "claire.martin@example.fr"
PHONE = "+33 6 12 34 56 78"
IBAN = "FR76 3000 6000 0112 3456 7890 189"
NIR = "2 19 07 83 137 050 52"
PROMPT = f"Write to {EMAIL} or call {PHONE} about the refund to {IBAN}."
# What a target outside the EU receives of PROMPT.
SENT = "Write to [EMAIL_1] or call [PHONE_1] about the refund to [IBAN_1]."
# What the client reads back from an echoing provider outside the EU: the pseudonymised
# values restored, the redacted one not.
ECHOED = f"You said: Write to {EMAIL} or call {PHONE} about the refund to [IBAN_1]."
US_FINDINGS = {"email": {"pseudonymise": 1}, "iban": {"redact": 1}, "phone": {"pseudonymise": 1}}
EU_FINDINGS = {"email": {"audit": 1}, "iban": {"audit": 1}, "phone": {"audit": 1}}
ORIGINALS = (EMAIL, PHONE, IBAN, "+33612345678", "FR7630006000011234567890189")


def protected(r: Route) -> Route:
    return r.model_copy(update={"data_protection": RULES})


def received(sim: Simulator) -> str:
    """Everything the simulated provider received, as one JSON text."""
    return json.dumps([r.body for r in sim.requests], ensure_ascii=False)


def assert_only_placeholders(sim: Simulator) -> None:
    text = received(sim)
    assert sim.requests, "the provider received nothing"
    for value in ORIGINALS:
        assert value not in text
    for placeholder in ("[EMAIL_1]", "[PHONE_1]", "[IBAN_1]"):
        assert placeholder in text


def assert_never_partial(deltas: list[str]) -> None:
    """No delta the client reads holds a piece of a pseudonymised placeholder: a split one
    was held back and put back whole. (The redacted ``[IBAN_1]`` is not put back: it may
    pass in pieces.)"""
    assert len(deltas) > 10  # the provider streamed 1-3 characters at a time
    for delta in deltas:
        assert "[E" not in delta, delta
        assert "[P" not in delta, delta
        assert not delta.endswith("["), delta


@pytest.fixture
def echoing(
    eu: OpenAISimulator, us: OpenAISimulator, claude: AnthropicSimulator
) -> tuple[OpenAISimulator, OpenAISimulator, AnthropicSimulator]:
    for sim in (eu, us, claude):
        sim.configure(echo=True)
    return eu, us, claude


@pytest.fixture
def sidecar(
    start_sidecar: StartSidecar,
    echoing: tuple[OpenAISimulator, OpenAISimulator, AnthropicSimulator],
) -> RunningSidecar:
    """Routes with RULES: ``us`` (openai-us), ``claude`` (anthropic-us), ``eu-first``
    (mistral-eu then openai-us), ``us-first`` (openai-us then mistral-eu); ``plain`` has none."""
    eu, us, claude = echoing
    config = two_provider_config(
        eu,
        us,
        protected(route("us", us_target(0))),
        protected(route("claude", Target(provider="anthropic-us", model=CLAUDE_MODEL))),
        protected(route("eu-first", eu_target(0), us_target(1))),
        protected(route("us-first", us_target(0), eu_target(1))),
        route("plain", us_target(0)),
        **{"anthropic-us": anthropic_provider(claude)},
    )
    return start_sidecar(config, THREE_CREDENTIALS)


def messages_client(sidecar: RunningSidecar) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sidecar.url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def chat(sidecar: RunningSidecar, model: str, text: str, stream: bool) -> tuple[str, str]:
    """(answer text, request id) of an OpenAI chat completion; streamed deltas are checked
    never to end inside a placeholder."""
    client = sidecar.client()
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
        return raw.parse().choices[0].message.content or "", raw.headers["x-request-id"]
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=messages, stream=True
    ) as response:
        deltas = [
            chunk.choices[0].delta.content or ""
            for chunk in response.parse()
            if chunk.choices and chunk.choices[0].delta.content
        ]
        rid = response.headers["x-request-id"]
    assert_never_partial(deltas)
    return "".join(deltas), rid


def message(sidecar: RunningSidecar, model: str, text: str, stream: bool) -> tuple[str, str]:
    """:func:`chat` with the anthropic SDK's Messages API."""
    client = messages_client(sidecar)
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=400, messages=messages
        )
        block = raw.parse().content[0]
        assert block.type == "text"
        return block.text, raw.headers["x-request-id"]
    with client.messages.stream(model=model, max_tokens=400, messages=messages) as events:
        deltas = list(events.text_stream)
        rid = events.response.headers["x-request-id"]
    assert_never_partial(deltas)
    return "".join(deltas), rid


CLIENTS = {"openai": chat, "anthropic": message}


# -- RequestProtection on its own ---------------------------------------------------------------


def _targets() -> tuple[tuple[Target, Provider], tuple[Target, Provider], tuple[Target, Provider]]:
    fr = Provider(api="openai", endpoint="http://fr.invalid/v1", location="FR", jurisdiction="FR")
    us = Provider(api="openai", endpoint="http://us.invalid/v1", location="US", jurisdiction="US")
    us2 = us.model_copy(update={"endpoint": "http://us2.invalid/v1"})
    return (
        (Target(provider="fr", model="m"), fr),
        (Target(provider="us", model="m"), us),
        (Target(provider="us2", model="m"), us2),
    )


async def test_each_target_gets_its_own_copy_and_the_client_body_is_never_changed() -> None:
    body: dict[str, Any] = {"model": "x", "messages": [{"role": "user", "content": PROMPT}]}
    before = copy.deepcopy(body)
    call = Call(Operation.CHAT, body, False)
    protection = await scan_request(DataProtectionEngine(RULES), call, len(PROMPT))
    (fr_target, fr), (us_target_, us), (us2_target, us2) = _targets()

    eu_out = protection.outgoing(fr_target, fr)
    us_out = protection.outgoing(us_target_, us)

    assert eu_out.call is call  # audit only: the client's call itself, no copy made
    assert eu_out.restorer is None
    assert us_out.call.body["messages"][0]["content"] == SENT
    assert us_out.restorer is not None
    assert us_out.restorer.text("[EMAIL_1]") == EMAIL
    # Another target at the same place shares the same result (and its translation).
    assert protection.outgoing(us2_target, us2) is us_out
    assert body == before
    assert protection.found() == {"email": 1, "iban": 1, "phone": 1}


async def test_a_blocked_target_is_refused_every_time_it_is_asked() -> None:
    call = Call(
        Operation.MESSAGES, {"messages": [{"role": "user", "content": f"NIR {NIR}"}]}, False
    )
    protection = await scan_request(DataProtectionEngine(RULES), call, 40)
    _, (us_target_, us), _ = _targets()
    for _ in range(2):
        with pytest.raises(PersonalDataBlocked) as caught:
            protection.outgoing(us_target_, us)
        assert caught.value.categories == ["national_id"]
        assert caught.value.summary.as_audit_dict() == {"national_id": {"block": 1}}


async def test_large_bodies_are_scanned_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = DataProtectionEngine(RULES)
    threads: list[str] = []
    scan = engine.scan

    def spying(operation: str, body: dict[str, Any]) -> Any:
        threads.append(threading.current_thread().name)
        return scan(operation, body)

    monkeypatch.setattr(engine, "scan", spying)
    call = Call(Operation.CHAT, {"messages": [{"role": "user", "content": PROMPT}]}, False)
    await scan_request(engine, call, THREAD_SCAN_BYTES)
    await scan_request(engine, call, THREAD_SCAN_BYTES + 1)
    main = threading.current_thread().name
    assert threads[0] == main
    assert threads[1] != main


# -- what the provider receives, what the client gets back -----------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("model", ["us", "claude"])
def test_outside_the_eu_the_provider_gets_placeholders_and_the_client_its_values_back(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
    model: str,
    client: str,
    stream: bool,
) -> None:
    # openai and anthropic clients, each to an OpenAI and an Anthropic provider: two native
    # pass-throughs and two translations (Anthropic client -> OpenAI provider and back).
    provider = us if model == "us" else claude

    text, rid = CLIENTS[client](sidecar, model, PROMPT, stream)

    assert text == ECHOED
    assert_only_placeholders(provider)
    assert SENT in received(provider)
    record = sidecar.audit_for(rid)
    assert record["outcome"] == "ok"
    assert record["attempts"][0]["dataProtection"] == US_FINDINGS
    assert record["dataProtection"] == {
        "found": {"email": 1, "iban": 1, "phone": 1},
        "applied": US_FINDINGS,
    }
    assert EMAIL not in sidecar.audit_path.read_text()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_responses_api_native_and_translated(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
    stream: bool,
) -> None:
    client = sidecar.client()
    for model, provider in (("us", us), ("claude", claude)):  # native, then through chat
        if stream:
            with client.responses.stream(
                model=model, input=PROMPT, instructions=f"Reply to {EMAIL}."
            ) as events:
                deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
                final = events.get_final_response()
            assert_never_partial(deltas)
            assert "".join(deltas) == ECHOED
        else:
            final = client.responses.create(
                model=model, input=PROMPT, instructions=f"Reply to {EMAIL}."
            )
        assert final.output_text == ECHOED
        # A response repeats the request's instructions: the client's, not the placeholder.
        assert final.instructions == f"Reply to {EMAIL}."
        assert_only_placeholders(provider)


def test_legacy_completions_and_tool_call_arguments(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
) -> None:
    client = sidecar.client()
    completion = client.completions.create(model="us", prompt=PROMPT)
    assert completion.choices[0].text == ECHOED
    deltas = [
        chunk.choices[0].text
        for chunk in client.completions.create(model="us", prompt=PROMPT, stream=True)
        if chunk.choices and chunk.choices[0].text
    ]
    assert_never_partial(deltas)
    assert "".join(deltas) == ECHOED
    # The history's tool call arguments (JSON in a string) and tool results are sent
    # protected too.
    client.chat.completions.create(
        model="us",
        messages=[
            {"role": "user", "content": "Look her up."},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"{PHONE}, {IBAN}"},
        ],
    )
    assert_only_placeholders(us)
    sent = us.last_request.body["messages"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"email": "[EMAIL_1]"}
    assert sent[2]["content"] == "[PHONE_1], [IBAN_1]"


def test_token_counting_and_embeddings_send_placeholders_too(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
) -> None:
    # Neither answer carries text to put back, but the request's text leaves the pod all the same.
    counted = messages_client(sidecar).messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": PROMPT}]
    )
    assert counted.input_tokens > 0
    assert claude.last_request.path == "/v1/messages/count_tokens"
    assert_only_placeholders(claude)
    sidecar.client().embeddings.create(model="us", input=[PROMPT])
    assert us.last_request.body["input"] == [SENT]
    assert_only_placeholders(us)


@pytest.fixture(params=sorted(ROWS))
def translated(
    request: pytest.FixtureRequest, lt: LoopThread, start_sidecar: StartSidecar
) -> Iterator[tuple[RunningSidecar, Simulator]]:
    """One echoing provider of each wire format, under US jurisdiction, as route ``chat``."""
    with serving_format(
        request.param, lt, start_sidecar, echo=True, jurisdiction="US", data_protection=RULES
    ) as pair:
        yield pair


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_provider_format_gets_placeholders_and_the_client_its_values(
    translated: tuple[RunningSidecar, Simulator], client: str, stream: bool
) -> None:
    sidecar, sim = translated
    text, _ = CLIENTS[client](sidecar, "chat", PROMPT, stream)
    assert text == ECHOED
    assert_only_placeholders(sim)


def test_a_request_without_personal_data_is_sent_as_it_came(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
) -> None:
    text, rid = chat(sidecar, "us", "What is the capital of France? [see note 1]", False)
    assert text == "You said: What is the capital of France? [see note 1]"
    record = sidecar.audit_for(rid)
    assert record["dataProtection"] == {"found": {}, "applied": {}}
    assert record["attempts"][0]["dataProtection"] == {}
    # A route without rules scans nothing and says nothing about it.
    text, rid = chat(sidecar, "plain", PROMPT, False)
    assert text == f"You said: {PROMPT}"
    assert EMAIL in received(us)
    assert "dataProtection" not in sidecar.audit_for(rid)


def test_large_requests_are_protected_too(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
) -> None:
    # Past THREAD_SCAN_BYTES the scan runs in a worker thread: same result.
    filler = "Order 48291057 shipped on 2024-06-13, invoice 000123 of 1 250,00 EUR. " * 600
    text, rid = chat(sidecar, "us", filler + PROMPT, True)
    assert text == "You said: " + filler + ECHOED.removeprefix("You said: ")
    assert_only_placeholders(us)
    assert sidecar.audit_for(rid)["dataProtection"]["applied"] == US_FINDINGS


# -- block -------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_block_refuses_with_a_400_naming_category_and_rule_never_the_value(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
    client: str,
) -> None:
    error: type[Exception] = (
        openai.BadRequestError if client == "openai" else anthropic.BadRequestError
    )
    with pytest.raises(error) as caught:  # type: ignore[call-overload]
        CLIENTS[client](sidecar, "us", f"{PROMPT} My NIR is {NIR}.", False)

    exc: Any = caught.value
    message = str(exc)
    assert "national_id" in message
    assert POLICY in message
    assert "location US, jurisdiction US" in message
    for value in (NIR, EMAIL, "219078313705052"):
        assert value not in message
    assert us.requests == []  # nothing was sent
    rid = exc.response.headers["x-request-id"]
    assert exc.response.headers["x-aiguillage-attempts"] == "0"
    if client == "openai":
        assert exc.body["code"] == "blocked_personal_data"
        assert exc.body["type"] == "invalid_request_error"
    else:
        assert exc.response.headers["x-aiguillage-error-code"] == "blocked_personal_data"
    record = sidecar.audit_for(rid)
    assert (record["outcome"], record["status"]) == ("blocked_personal_data", 400)
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "skipped_personal_data"
    assert attempt["dataProtection"] == {**US_FINDINGS, "national_id": {"block": 1}}
    assert record["dataProtection"]["found"] == {
        "email": 1,
        "iban": 1,
        "national_id": 1,
        "phone": 1,
    }
    assert NIR not in sidecar.audit_path.read_text()


def test_block_refuses_a_responses_request_in_its_shape(
    sidecar: RunningSidecar, us: OpenAISimulator, claude: AnthropicSimulator
) -> None:
    # Native (openai-us) and translated through chat (anthropic-us), whole and streamed:
    # refused before either provider is contacted.
    for model, stream in [(m, s) for m in ("us", "claude") for s in (False, True)]:
        with pytest.raises(openai.BadRequestError) as caught:
            sidecar.client().responses.create(model=model, input=f"My NIR is {NIR}.", stream=stream)
        assert caught.value.status_code == 400
        body: Any = caught.value.body
        assert (body["code"], body["type"]) == ("blocked_personal_data", "invalid_request_error")
        assert "national_id" in body["message"]
        assert POLICY in body["message"]
        assert NIR not in body["message"]
    assert us.requests == []
    assert claude.requests == []


def test_a_block_toward_one_target_fails_over_to_one_that_may_receive_it(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    # "us-first": openai-us may not receive a national id; mistral-eu may, and only audits.
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="us-first", messages=[{"role": "user", "content": f"My NIR is {NIR}."}]
    )
    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    assert raw.parse().choices[0].message.content == f"You said: My NIR is {NIR}."
    assert us.requests == []
    assert NIR in received(eu)
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert [(a["outcome"], a["dataProtection"]) for a in record["attempts"]] == [
        ("skipped_personal_data", {"national_id": {"block": 1}}),
        ("ok", {"national_id": {"audit": 1}}),
    ]
    assert record["dataProtection"]["applied"] == {"national_id": {"audit": 1}}


def test_blocked_toward_one_target_and_the_other_down_is_a_failure_not_a_refusal(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    # The EU target could serve it: the client is told the truth (502), not "remove the data".
    eu.set_faults([{"kind": "status", "status": 503}])
    with pytest.raises(openai.InternalServerError) as caught:
        sidecar.client().chat.completions.create(
            model="us-first", messages=[{"role": "user", "content": f"My NIR is {NIR}."}]
        )
    assert caught.value.status_code == 502
    assert us.requests == []
    record = sidecar.audit_for(caught.value.response.headers["x-request-id"])
    assert [a["outcome"] for a in record["attempts"]] == ["skipped_personal_data", "http_error"]


# -- failover changes the action -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_failover_from_eu_to_us_applies_the_us_action_on_that_attempt(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    stream: bool,
) -> None:
    eu.set_faults([{"kind": "status", "status": 503}])

    text, rid = chat(sidecar, "eu-first", PROMPT, stream)

    # The EU provider (audit only) had received the originals; the US one placeholders.
    assert eu.requests[0].body["messages"][0]["content"] == PROMPT
    assert us.requests[0].body["messages"][0]["content"] == SENT
    assert text == ECHOED
    record = sidecar.audit_for(rid)
    assert [(a["provider"], a["outcome"], a["dataProtection"]) for a in record["attempts"]] == [
        ("mistral-eu", "http_error", EU_FINDINGS),
        ("openai-us", "ok", US_FINDINGS),
    ]
    assert record["dataProtection"]["applied"] == US_FINDINGS


def test_inside_the_eu_the_provider_gets_the_originals(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
) -> None:
    text, rid = chat(sidecar, "eu-first", PROMPT, True)
    assert text == f"You said: {PROMPT}"
    assert eu.requests[0].body["messages"][0]["content"] == PROMPT
    assert us.requests == []
    assert sidecar.audit_for(rid)["attempts"][0]["dataProtection"] == EU_FINDINGS


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_count_findings_per_category_and_action_once_per_request(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
) -> None:
    chat(sidecar, "us", PROMPT, False)  # pseudonymise 2, redact 1
    chat(sidecar, "us", PROMPT, True)  # the same again
    eu.set_faults([{"kind": "status", "status": 503}])
    chat(sidecar, "eu-first", PROMPT, False)  # failed over: counted as the US attempt's
    chat(sidecar, "eu-first", PROMPT, False)  # EU: audit
    with pytest.raises(openai.BadRequestError):
        chat(sidecar, "us", f"NIR {NIR}", False)

    def count(category: str, action: str) -> float:
        name = "aiguillage_data_protection_findings_total"
        return sidecar.metric(name, category=category, action=action)

    # Metrics are recorded just after each answer is sent.
    wait_for(lambda: count("national_id", "block") == 1, what="the blocked request counted")
    assert count("email", "pseudonymise") == 3
    assert count("phone", "pseudonymise") == 3
    assert count("iban", "redact") == 3
    assert count("email", "audit") == 1
    assert count("national_id", "block") == 1
    assert (
        sidecar.metric("aiguillage_requests_total", route="us", outcome="blocked_personal_data")
        == 1
    )
    assert EMAIL not in sidecar.metrics()
