"""The sidecar's HTTP contract, as apps see it through the official ``openai`` SDK.

Covers the OpenAI-compatible endpoints (sync, async, streamed), the routing headers, what the
provider receives (its model name and its key, never the client's credentials), the error
bodies, ``/healthz``, ``/readyz``, ``/metrics`` and the body size limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import Target
from aiguillage.sidecar.httpserver import StreamResponse
from tests.sidecar.conftest import (
    CLIENT_KEY,
    EU_KEY,
    EU_MODEL,
    US_KEY,
    US_MODEL,
    RunningSidecar,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
    us_target,
)
from tests.sidecar.httpserver._raw import Answer, read_answer

HELLO_EU = "Hello from mistral-eu! This is a simulated answer."
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise this ticket please"}]


def assert_routing_headers(
    headers: Any, *, route: str, provider: str, model: str, location: str, attempts: int
) -> None:
    assert headers["x-request-id"]
    assert headers["x-aiguillage-route"] == route
    assert headers["x-aiguillage-provider"] == provider
    assert headers["x-aiguillage-model"] == model
    assert headers["x-aiguillage-location"] == location
    assert headers["x-aiguillage-attempts"] == str(attempts)


# -- the openai SDK against the sidecar ----------------------------------------------------------


def test_sync_chat_completion(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == HELLO_EU
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8
    assert_routing_headers(
        raw.headers,
        route="chat",
        provider="mistral-eu",
        model=EU_MODEL,
        location="FR",
        attempts=1,
    )
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert record["outcome"] == "ok"
    assert record["route"] == "chat"
    assert record["usage"] == {"inputTokens": 4, "outputTokens": 8}
    assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [("mistral-eu", "ok")]


def test_provider_gets_its_model_and_key_never_the_clients_credentials(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    sidecar.client(
        default_headers={"Cookie": "session=client-cookie-value"}
    ).chat.completions.create(model="chat", messages=MESSAGES)

    (received,) = eu.requests
    assert received.body["model"] == EU_MODEL
    assert received.body["messages"] == MESSAGES
    assert received.headers["authorization"] == f"Bearer {EU_KEY}"
    assert "cookie" not in received.headers
    assert not any(CLIENT_KEY in value for value in received.headers.values())
    assert not any("client-cookie-value" in value for value in received.headers.values())


def test_client_request_id_is_kept(sidecar: RunningSidecar) -> None:
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, extra_headers={"x-request-id": "req-from-the-app-42"}
    )

    assert raw.headers["x-request-id"] == "req-from-the-app-42"
    assert sidecar.audit_for("req-from-the-app-42")["outcome"] == "ok"


async def test_async_chat_completion(sidecar: RunningSidecar) -> None:
    async with sidecar.async_client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    completion = raw.parse()

    assert completion.choices[0].message.content == HELLO_EU
    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    assert raw.headers["x-aiguillage-attempts"] == "1"


def test_stream_without_include_usage_hides_the_usage_chunk(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == HELLO_EU
    assert all(c.choices for c in chunks), "a usage-only chunk reached the client"
    assert all(c.usage is None for c in chunks)
    # ... though the sidecar asked the provider for it, and accounted for it
    assert eu.last_request.body["stream_options"] == {"include_usage": True}
    assert_routing_headers(
        raw.headers,
        route="chat",
        provider="mistral-eu",
        model=EU_MODEL,
        location="FR",
        attempts=1,
    )
    record = sidecar.audit_for(raw.headers["x-request-id"])
    assert record["stream"] is True
    assert record["outcome"] == "ok"
    assert record["usage"]["outputTokens"] == 8


def test_stream_with_include_usage_shows_usage(sidecar: RunningSidecar) -> None:
    stream = sidecar.client().chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO_EU


async def test_async_stream(sidecar: RunningSidecar) -> None:
    async with sidecar.async_client() as client:
        stream = await client.chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HELLO_EU
    assert chunks[-1].usage is not None


def test_embeddings(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    raw = sidecar.client().embeddings.with_raw_response.create(
        model="embed", input=["first text", "second"]
    )
    result = raw.parse()

    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.data[0].embedding != result.data[1].embedding
    assert eu.last_request.path == "/v1/embeddings"
    assert eu.last_request.body["model"] == "mistral-embed"
    assert raw.headers["x-aiguillage-model"] == "mistral-embed"
    assert raw.headers["x-aiguillage-route"] == "embed"


def test_models_lists_the_route_names(sidecar: RunningSidecar) -> None:
    assert sorted(m.id for m in sidecar.client().models.list()) == ["chat", "embed"]


def test_legacy_completions(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    completion = sidecar.client().completions.create(model="chat", prompt="Say hello")

    assert completion.choices[0].text == HELLO_EU
    assert eu.last_request.path == "/v1/completions"


def test_responses_api_plain_and_streamed(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    client = sidecar.client()
    assert client.responses.create(model="chat", input="Say hello").output_text == HELLO_EU

    with client.responses.stream(model="chat", input="Say hello") as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()

    assert events[-1] == "response.completed"
    assert final.output_text == HELLO_EU
    assert eu.last_request.body["model"] == EU_MODEL
    record = sidecar.wait_audit(2)[-1]
    assert record["outcome"] == "ok"
    assert record["usage"]["outputTokens"] == 8


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_tool_calls_pass_through(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    completion = sidecar.client().chat.completions.create(
        model="chat", messages=MESSAGES, tools=[WEATHER_TOOL], tool_choice="auto"
    )

    assert eu.last_request.body["tools"] == [WEATHER_TOOL]
    assert eu.last_request.body["tool_choice"] == "auto"
    call = completion.choices[0].message.tool_calls
    assert call is not None
    assert call[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_calls_pass_through(sidecar: RunningSidecar) -> None:
    chunks = list(
        sidecar.client().chat.completions.create(
            model="chat", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )

    names = [
        tc.function.name
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function and tc.function.name
    ]
    assert names == ["get_weather"]


def test_json_mode_passes_through(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    sidecar.client().chat.completions.create(
        model="chat", messages=MESSAGES, response_format={"type": "json_object"}
    )

    assert eu.last_request.body["response_format"] == {"type": "json_object"}


def test_multipart_image_content_passes_through(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13)).decode()
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            ],
        }
    ]
    completion = sidecar.client().chat.completions.create(model="chat", messages=messages)

    assert completion.choices[0].message.content == HELLO_EU
    assert eu.last_request.body["messages"] == messages


def test_second_provider_gets_its_own_key_and_model(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(two_provider_config(eu, us, route("chat", us_target(0), eu_target(1))))
    raw = sc.client().chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)

    assert raw.headers["x-aiguillage-provider"] == "openai-us"
    assert raw.headers["x-aiguillage-location"] == "US"
    assert us.last_request.headers["authorization"] == f"Bearer {US_KEY}"
    assert us.last_request.body["model"] == US_MODEL
    assert eu.requests == []


# -- errors the sidecar itself answers -----------------------------------------------------------


def assert_openai_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status
    body = resp.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert resp.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


def test_malformed_json_body_is_400(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    resp = sidecar.raw("POST", "/v1/chat/completions", data=b'{"model": "chat", "messa')

    error = assert_openai_error(resp, 400, "invalid_json")
    assert error["type"] == "invalid_request_error"
    assert eu.requests == []


def test_body_that_is_not_an_object_is_400(sidecar: RunningSidecar) -> None:
    assert_openai_error(
        sidecar.raw("POST", "/v1/chat/completions", json=["chat"]), 400, "invalid_json"
    )


def test_missing_model_is_400(sidecar: RunningSidecar) -> None:
    assert_openai_error(
        sidecar.raw("POST", "/v1/chat/completions", json={"messages": MESSAGES}),
        400,
        "model_required",
    )


def test_unknown_model_is_404_route_not_found(sidecar: RunningSidecar) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sidecar.client().chat.completions.create(model="gpt-5-nonexistent", messages=MESSAGES)

    assert caught.value.code == "route_not_found"
    assert "gpt-5-nonexistent" in caught.value.message
    assert "chat" in caught.value.message  # names the routes that exist


def test_body_over_the_limit_is_413(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(two_provider_config(eu, us, route("chat", eu_target())), max_body=4096)
    small = {"model": "chat", "messages": MESSAGES}
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 5000}]}

    assert sc.raw("POST", "/v1/chat/completions", json=small).status == 200
    error = assert_openai_error(
        sc.raw("POST", "/v1/chat/completions", json=big), 413, "request_too_large"
    )
    assert "4096" in error["message"]
    assert len(eu.requests) == 1


def test_default_body_limit_accepts_large_prompts(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    content = "word " * 400_000  # 2 MB, a long document to summarise
    completion = sidecar.client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": content}]
    )

    assert completion.choices[0].message.content == HELLO_EU
    assert eu.last_request.body["messages"][0]["content"] == content


def test_provider_4xx_is_relayed_with_routing_headers(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "status", "status": 422, "message": "temperature is out of range"}])
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        sidecar.client().chat.completions.create(model="chat", messages=MESSAGES)

    assert caught.value.status_code == 422
    assert caught.value.body == {  # the provider's own error body
        "message": "temperature is out of range",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    headers = caught.value.response.headers
    assert headers["x-aiguillage-provider"] == "mistral-eu"
    assert headers["x-aiguillage-route"] == "chat"
    assert headers["x-aiguillage-attempts"] == "1"


# -- health, readiness, metrics ------------------------------------------------------------------


def test_healthz(sidecar: RunningSidecar) -> None:
    resp = sidecar.raw("GET", "/healthz")
    assert resp.status == 200


def test_not_ready_without_a_config(start_sidecar: StartSidecar) -> None:
    sc = start_sidecar(None)

    assert sc.raw("GET", "/healthz").status == 200
    assert sc.raw("GET", "/readyz").status == 503
    with pytest.raises(openai.APIStatusError) as caught:
        sc.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.code == "not_ready"
    assert sc.client().models.list().data == []


def test_ready_names_the_config_hash(sidecar: RunningSidecar) -> None:
    resp = sidecar.raw("GET", "/readyz")

    assert resp.status == 200
    assert sidecar.serving_hash()
    assert sidecar.serving_hash() in resp.body.decode()


def test_metrics_after_a_request(sidecar: RunningSidecar) -> None:
    before = sidecar.metrics()
    assert "gen_ai_client_token_usage" not in before

    raw = sidecar.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES
    )
    sidecar.audit_for(raw.headers["x-request-id"])  # the request is fully accounted
    text = sidecar.metrics()

    assert "# TYPE aiguillage_requests_total counter" in text
    assert sidecar.metric("aiguillage_requests_total", route="chat", outcome="ok") == 1
    # gen_ai.client.token.usage is a histogram per the GenAI semantic conventions.
    assert "# TYPE gen_ai_client_token_usage histogram" in text
    series = {"gen_ai_provider_name": "mistral-eu", "gen_ai_operation_name": "chat"}
    assert (
        sidecar.metric("gen_ai_client_token_usage_sum", **series, gen_ai_token_type="output") == 8
    )
    assert sidecar.metric("gen_ai_client_token_usage_sum", **series, gen_ai_token_type="input") == 4
    assert sidecar.metric("gen_ai_client_operation_duration_seconds_count", **series) == 1
    assert "gen_ai_client_operation_duration_seconds_count" in text


def test_cost_is_audited_in_euros(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    priced = Target.model_validate(
        {
            "provider": "mistral-eu",
            "model": EU_MODEL,
            "pricing": {"input_per_million": "2", "output_per_million": "6"},
        }
    )
    sc = start_sidecar(two_provider_config(eu, us, route("chat", priced)))
    raw = sc.client().chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)

    record = sc.audit_for(raw.headers["x-request-id"])
    # 4 input tokens at 2 €/M + 8 output tokens at 6 €/M
    assert float(record["costEur"]) == pytest.approx((4 * 2 + 8 * 6) / 1e6)
    assert sc.metric("aiguillage_cost_eur_total", route="chat") == pytest.approx(56e-6)


def test_a_client_closing_right_after_done_is_no_error(
    sidecar: RunningSidecar, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SDKs close the connection once they read ``[DONE]``; the sidecar's ``write_eof`` then
    finds the transport closing. The answer was complete: no error logged, audited ``ok``."""
    original = StreamResponse.write_eof

    async def client_gone_first(self: StreamResponse, data: bytes = b"") -> None:
        if "x-aiguillage-route" in self.headers:  # the sidecar's answers, not the simulators'
            conn = self._conn
            assert conn is not None
            assert conn.transport is not None
            conn.transport.close()
        await original(self, data)

    monkeypatch.setattr(StreamResponse, "write_eof", client_gone_first)

    async def read_until_done() -> tuple[str, bytes]:
        body = b""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                sidecar.base_url + "/chat/completions",
                json={"model": "chat", "messages": MESSAGES, "stream": True},
            ) as resp,
        ):
            with contextlib.suppress(aiohttp.ClientError):
                async for line in resp.content:
                    body += line
            return resp.headers["x-request-id"], body

    with caplog.at_level(logging.DEBUG):
        rid, body = sidecar.lt.run(read_until_done())
        record = sidecar.audit_for(rid)

    assert body.rstrip().endswith(b"data: [DONE]")
    assert (record["outcome"], record["status"]) == ("ok", 200)
    unhandled = [
        r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ConnectionResetError)
    ]
    assert not unhandled, caplog.text


# -- HTTP framing, as the sidecar's own server reads it (see httpserver/protocol.py) ---------------


def exchange_raw(sc: RunningSidecar, raw: bytes, answers: int = 1) -> list[Answer]:
    """Send ``raw`` bytes on one connection; read ``answers`` answers from it."""

    async def go() -> list[Answer]:
        host, port = sc.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(raw)
            return [await read_answer(reader) for _ in range(answers)]
        finally:
            writer.close()

    return sc.lt.run(go())


def chat_request(request_id: str, body: bytes, *headers: bytes) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nx-request-id: " + request_id.encode() + b"\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n" + body
    )  # fmt: skip


def test_a_chunked_request_body_is_served(sidecar: RunningSidecar, eu: OpenAISimulator) -> None:
    body = orjson.dumps({"model": "chat", "messages": MESSAGES})
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (body[:7], body[7:])) + b"0\r\n\r\n"
    (answer,) = exchange_raw(
        sidecar, chat_request("chunked-1", chunked, b"Transfer-Encoding: chunked")
    )
    assert answer.status == 200
    assert orjson.loads(answer.body)["object"] == "chat.completion"
    assert eu.requests[-1].body["messages"] == MESSAGES


def test_a_malformed_chunked_body_is_a_400_in_the_api_shape_and_audited(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    raw = chat_request("bad-chunk-1", b'5\r\n{"mod\r\nzz\r\n', b"Transfer-Encoding: chunked")
    (answer,) = exchange_raw(sidecar, raw)
    assert answer.status == 400
    assert answer.headers["connection"] == "close"
    assert orjson.loads(answer.body)["error"]["code"] == "malformed_body"
    record = sidecar.audit_for("bad-chunk-1")
    assert (record["status"], record["outcome"]) == (400, "malformed_body")
    assert eu.requests == []


def test_what_is_not_http_gets_a_400_in_the_openai_shape(sidecar: RunningSidecar) -> None:
    (answer,) = exchange_raw(sidecar, b"HELLO THERE\r\n\r\n")
    assert answer.status == 400
    error = orjson.loads(answer.body)["error"]
    assert error["code"] == "malformed_request"
    assert answer.headers["connection"] == "close"


def test_pipelined_requests_are_answered_in_order(
    sidecar: RunningSidecar, eu: OpenAISimulator
) -> None:
    ids = [f"pipelined-{n}" for n in range(3)]
    body = orjson.dumps({"model": "chat", "messages": MESSAGES})
    length = b"Content-Length: %d" % len(body)
    answers = exchange_raw(sidecar, b"".join(chat_request(i, body, length) for i in ids), 3)
    assert [a.headers["x-request-id"] for a in answers] == ids
    assert {a.status for a in answers} == {200}
    assert len(eu.requests) == 3
