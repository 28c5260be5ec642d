"""Draining (``shutdown.py``): requests in flight finish within the drain time; the ones still
running at its end get a truthful end in the client's API shape and an audit line each."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import aiohttp
import orjson
import pytest

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.shutdown import InFlight
from tests.sidecar._wire import openai_error
from tests.sidecar.conftest import (
    MESSAGES,
    PATIENT,
    THREE_CREDENTIALS,
    RunningSidecar,
    StartSidecar,
    three_provider_config,
    wait_for,
)


@pytest.fixture
def patient(
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
) -> RunningSidecar:
    config = three_provider_config(eu, us, claude, timeouts=PATIENT)
    return start_sidecar(config, THREE_CREDENTIALS)


class Client:
    """One request sent from the servers' loop; its status, and the body as it arrives."""

    def __init__(self, lt: LoopThread, url: str, body: dict[str, Any], rid: str) -> None:
        self.status = 0
        self.received = b""
        self.done: Future[None] = asyncio.run_coroutine_threadsafe(
            self._go(url, body, rid), lt.loop
        )

    async def _go(self, url: str, body: dict[str, Any], rid: str) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, json=body, headers={"x-request-id": rid}) as resp,
        ):
            self.status = resp.status
            async for chunk in resp.content.iter_any():
                self.received += chunk

    @classmethod
    def chat(cls, lt: LoopThread, sidecar: RunningSidecar, rid: str) -> Client:
        """A chat completion (not streamed) on route ``chat``."""
        body = {"model": "chat", "messages": MESSAGES}
        return cls(lt, sidecar.base_url + "/chat/completions", body, rid)

    def result(self) -> bytes:
        self.done.result(30)
        return self.received


def test_a_stream_still_running_at_the_deadline_ends_with_an_error_event(
    patient: RunningSidecar, eu: OpenAISimulator, lt: LoopThread
) -> None:
    eu.set_faults([{"kind": "stall_mid_stream", "after_chunks": 1}])  # never ends by itself
    body = {"model": "chat", "messages": MESSAGES, "stream": True}
    client = Client(lt, patient.base_url + "/chat/completions", body, "drain-1")
    wait_for(lambda: b"Hello" in client.received, what="the first chunk")

    ended = lt.run(patient.sidecar.drain(0.2))

    assert ended == 1
    received = client.result()
    frames = [f for f in received.split(b"\n\n") if f]
    assert frames[-1].startswith(b"data: ")
    error = openai_error(frames[-1][6:])
    assert error.code == "shutdown"
    record = patient.audit_for("drain-1")
    assert (record["outcome"], record["status"]) == ("shutdown", 200)
    assert record["attempts"][0]["outcome"] == "cancelled"
    wait_for(lambda: eu.client_gone, what="the provider's stream to be closed")


def test_an_anthropic_stream_gets_an_anthropic_error_event(
    patient: RunningSidecar, claude: AnthropicSimulator, lt: LoopThread
) -> None:
    claude.set_faults([{"kind": "stall_mid_stream", "after_chunks": 1}])
    body = {"model": "claude", "max_tokens": 64, "messages": MESSAGES, "stream": True}
    client = Client(lt, patient.url + "/v1/messages", body, "drain-2")
    wait_for(lambda: b"content_block_delta" in client.received, what="the first delta")

    lt.run(patient.sidecar.drain(0.2))

    last = [f for f in client.result().split(b"\n\n") if f][-1]
    name, data = last.split(b"\n")
    assert name == b"event: error"
    assert orjson.loads(data[6:])["error"]["type"] == "api_error"
    assert patient.audit_for("drain-2")["outcome"] == "shutdown"


def test_a_request_not_answered_at_the_deadline_gets_a_503(
    patient: RunningSidecar, eu: OpenAISimulator, lt: LoopThread
) -> None:
    eu.set_faults([{"kind": "slow_first_byte", "delay": 60}])
    client = Client.chat(lt, patient, "drain-3")
    wait_for(lambda: eu.requests, what="the request to reach the provider")

    lt.run(patient.sidecar.drain(0.2))

    body = client.result()
    assert client.status == 503
    assert openai_error(body).code == "shutdown"
    record = patient.audit_for("drain-3")
    assert (record["outcome"], record["status"]) == ("shutdown", 503)


def test_requests_that_finish_within_the_drain_are_answered(
    patient: RunningSidecar, eu: OpenAISimulator, lt: LoopThread
) -> None:
    eu.set_faults([{"kind": "slow_first_byte", "delay": 0.5}])
    client = Client.chat(lt, patient, "drain-4")
    wait_for(lambda: eu.requests, what="the request to reach the provider")

    ended = lt.run(patient.sidecar.drain(30))

    assert ended == 0
    assert b"Hello from mistral-eu" in client.result()
    assert client.status == 200
    assert patient.audit_for("drain-4")["outcome"] == "ok"


async def test_in_flight_drain_returns_at_once_when_nothing_runs() -> None:
    inflight = InFlight()
    async with asyncio.timeout(1):
        assert await inflight.drain(60) == 0
    assert not inflight.expired


async def test_in_flight_drain_waits_for_the_last_request() -> None:
    inflight = InFlight()
    release = asyncio.Event()

    async def request() -> str:
        task = inflight.enter()
        try:
            await release.wait()
            return "answered"
        finally:
            inflight.leave(task)

    running = asyncio.create_task(request())
    await asyncio.sleep(0)
    draining = asyncio.create_task(inflight.drain(60))
    await asyncio.sleep(0.05)
    assert not draining.done()

    release.set()
    assert await asyncio.wait_for(draining, 5) == 0
    assert await running == "answered"
