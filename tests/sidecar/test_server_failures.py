"""Truthful failures (``server.py``): whatever is raised inside the sidecar, and whenever the
client goes away, the client gets an answer in its API's shape (or nothing, if it left) and
the audit record and metrics say exactly what happened.

Unexpected exceptions are injected by monkeypatching the adapter's request building or the
sidecar's writes (what a provider sends that an adapter cannot read is a failed attempt, see
tests/sidecar/test_upstream.py); client disconnects use a simulator that answers slowly and
records when its connection was closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.adapters.openai import OpenAIAdapter
from aiguillage.sidecar.config import Target
from aiguillage.sidecar.httpserver import StreamResponse
from tests.sidecar._wire import anthropic_error, openai_error
from tests.sidecar.conftest import (
    CLIENT_KEY,
    MESSAGES,
    PATIENT,
    RunningSidecar,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
    us_target,
    wait_for,
)

SECRET = "the patient's diagnosis is confidential"


class Boom(ValueError):
    """What a bug deep inside the sidecar could raise (its message carries request data)."""


def fail_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing the provider's request raises (a bug in the sidecar, not a provider failure:
    provider answers the adapters cannot read are failed attempts, see upstream.py)."""

    def build(self: OpenAIAdapter, call: Any, model: str) -> Any:
        raise Boom(SECRET)

    monkeypatch.setattr(OpenAIAdapter, "build", build)


def fail_writing_once(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The sidecar's own write of its ``after + 1``-th piece of a streamed answer raises."""
    write = StreamResponse.write
    writes = {"n": 0}

    async def broken(self: StreamResponse, data: bytes) -> None:
        if "x-aiguillage-route" in self.headers:  # the sidecar's answers, not the simulator's
            writes["n"] += 1
            if writes["n"] == after + 1:
                raise Boom(SECRET)
        await write(self, data)

    monkeypatch.setattr(StreamResponse, "write", broken)


def assert_logged_without_data(caplog: pytest.LogCaptureFixture, rid: str) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert rid in message
    assert "Boom" in message
    assert errors[0].exc_info is None  # no traceback: its frames could show request data
    assert SECRET not in caplog.text


# -- unexpected exceptions -------------------------------------------------------------------------


def test_an_exception_before_the_answer_is_a_500_in_the_openai_shape(
    sidecar: RunningSidecar,
    us: OpenAISimulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fail_building(monkeypatch)
    resp = sidecar.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={"x-request-id": "boom-1"},
    )

    assert resp.status == 500
    assert resp.headers["content-type"].startswith("application/json")  # not aiohttp's page
    error = openai_error(resp.body)
    assert (error.type, error.code) == ("server_error", "internal_error")
    assert "boom-1" in error.message
    assert SECRET not in error.message
    assert resp.headers["x-request-id"] == "boom-1"
    assert us.requests == []  # a bug is not a provider failure: no failover
    record = sidecar.audit_for("boom-1")
    assert (record["outcome"], record["status"]) == ("internal_error", 500)
    assert [a["outcome"] for a in record["attempts"]] == ["internal_error"]
    wait_for(lambda: sidecar.metric("aiguillage_requests_total", outcome="internal_error") == 1)
    assert sidecar.metric("aiguillage_requests_total", outcome="ok") == 0
    assert_logged_without_data(caplog, "boom-1")


def test_the_openai_sdk_sees_an_internal_server_error(
    sidecar: RunningSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_building(monkeypatch)
    with pytest.raises(openai.InternalServerError) as caught:
        sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.code == "internal_error"


def test_an_exception_on_the_messages_api_is_an_anthropic_500(
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sc = start_sidecar(two_provider_config(eu, us, route("mistral", eu_target())))
    fail_building(monkeypatch)
    client = anthropic.Anthropic(base_url=sc.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="mistral", max_tokens=8, messages=MESSAGES)

    assert anthropic_error(caught.value.response.content).error.type == "api_error"
    record = sc.audit_for(caught.value.response.headers["x-request-id"])
    assert (record["outcome"], record["status"], record["operation"]) == (
        "internal_error",
        500,
        "messages",
    )


def test_an_exception_after_the_stream_started_ends_it_with_an_error_event(
    sidecar: RunningSidecar,
    eu: OpenAISimulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Deltas apart in time, so that they are written apart (one write per batch of events
    # that arrived together): the third write fails, after the client had two.
    eu.configure(chunk_interval=0.05)
    fail_writing_once(monkeypatch, after=2)
    received: list[str] = []
    stream = sidecar.client().chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "boom-2"}
    )
    with pytest.raises(openai.APIError) as caught:  # noqa: PT012
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)

    assert received  # the stream had started
    assert "internal" in caught.value.message or "failed" in caught.value.message
    record = sidecar.audit_for("boom-2")
    # The client got a 200 and a broken stream: the audit says both.
    assert (record["outcome"], record["status"]) == ("internal_error", 200)
    assert_logged_without_data(caplog, "boom-2")


def test_an_exception_before_the_first_stream_byte_is_a_500(
    sidecar: RunningSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_building(monkeypatch)
    with pytest.raises(openai.InternalServerError):
        sidecar.client().chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "boom-3"}
        )
    record = sidecar.audit_for("boom-3")
    assert (record["outcome"], record["status"]) == ("internal_error", 500)


# -- clients that go away --------------------------------------------------------------------------


async def leave_before_the_answer(url: str, body: dict[str, Any], rid: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await session.post(url, json=body, headers={"x-request-id": rid})


async def leave_mid_stream(url: str, body: dict[str, Any], rid: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"x-request-id": rid}) as resp,
    ):
        assert resp.status == 200
        first = await resp.content.readline()
        resp.close()  # hang up with the stream still going
        return first


@pytest.fixture
def one_target(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> RunningSidecar:
    priced = Target.model_validate(
        {
            "provider": "mistral-eu",
            "model": "mistral-small-latest",
            "pricing": {"input_per_million": "2", "output_per_million": "6"},
        }
    )
    # Patient deadlines: only the client leaving can end these requests early.
    chat = route("chat", priced, us_target(1), timeouts=PATIENT)
    return start_sidecar(two_provider_config(eu, us, chat))


def test_a_client_that_leaves_cancels_the_upstream_request(
    one_target: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator, lt: Any
) -> None:
    eu.set_faults([{"kind": "slow_first_byte", "delay": 60}])
    body = {"model": "chat", "messages": MESSAGES}
    lt.run(leave_before_the_answer(one_target.base_url + "/chat/completions", body, "gone-1"))

    # The provider sees its connection closed long before it would have answered.
    wait_for(lambda: eu.client_gone, timeout=10, what="the provider's connection to close")
    record = one_target.audit_for("gone-1")
    assert (record["outcome"], record["status"]) == ("client_closed", 499)
    assert [a["outcome"] for a in record["attempts"]] == ["cancelled"]
    assert record["usage"] == {"inputTokens": 0, "outputTokens": 0}
    assert record["costEur"] is None  # nothing billed: no usage was reported
    assert us.requests == []  # and no failover for a client that left
    wait_for(lambda: one_target.metric("aiguillage_requests_total", outcome="client_closed") == 1)


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_stream(
    one_target: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator, lt: Any
) -> None:
    eu.configure(chunks=200, chunk_interval=0.2)  # 40 s of stream
    body = {"model": "chat", "messages": MESSAGES, "stream": True}
    first = lt.run(leave_mid_stream(one_target.base_url + "/chat/completions", body, "gone-2"))

    assert first.startswith(b"data: ")
    wait_for(lambda: eu.client_gone, timeout=10, what="the provider's stream to be closed")
    record = one_target.audit_for("gone-2")
    assert (record["outcome"], record["status"]) == ("client_closed", 200)
    assert record["attempts"][0]["outcome"] == "cancelled"
    assert record["costEur"] is None or float(record["costEur"]) == 0
    assert us.requests == []


def test_a_client_that_leaves_after_the_last_event_got_its_answer(
    one_target: RunningSidecar,
    eu: OpenAISimulator,
    lt: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The sidecar is still ending the chunked body when the client, which read [DONE], hangs
    # up: the request was answered in full, and is audited as such.
    write_eof = StreamResponse.write_eof

    async def slow_end(self: StreamResponse, data: bytes = b"") -> None:
        if "x-aiguillage-route" in self.headers:  # the sidecar's answers only
            await asyncio.sleep(30)
        await write_eof(self, data)

    monkeypatch.setattr(StreamResponse, "write_eof", slow_end)

    async def read_to_done(url: str) -> bytes:
        body = {"model": "chat", "messages": MESSAGES, "stream": True}
        received = b""
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body, headers={"x-request-id": "done-1"}) as resp,
        ):
            while b"data: [DONE]" not in received:
                received += await resp.content.readany()
            resp.close()
        return received

    lt.run(read_to_done(one_target.base_url + "/chat/completions"))

    record = one_target.audit_for("done-1")
    assert (record["outcome"], record["status"]) == ("ok", 200)
    assert record["usage"]["outputTokens"] > 0
    assert record["costEur"] is not None
