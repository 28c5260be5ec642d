"""Which adapter serves a target for each frontend (frontends/base.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from aiguillage.sidecar.adapters import UnsupportedApi
from aiguillage.sidecar.adapters.anthropic import AnthropicAdapter
from aiguillage.sidecar.adapters.base import Adapter, Call, Operation
from aiguillage.sidecar.adapters.bedrock import EVENT_STREAM, BedrockAdapter
from aiguillage.sidecar.adapters.openai import OpenAIAdapter
from aiguillage.sidecar.adapters.openai_chat import UnsupportedRequest
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.frontends import OPENAI, frontend_for
from aiguillage.sidecar.frontends.anthropic import ANTHROPIC, AnthropicFrontend
from aiguillage.sidecar.frontends.base import Translated
from aiguillage.sidecar.frontends.count_tokens import COUNT_TOKENS
from aiguillage.sidecar.frontends.responses import RESPONSES

CREDENTIAL = orjson.dumps({"accessKeyId": "AKID", "secretAccessKey": "secret"}).decode()


def adapters() -> dict[str, Adapter | UnsupportedApi]:
    return {
        "openai": OpenAIAdapter(Provider(api="openai", endpoint="http://oai/v1"), "k"),
        "anthropic": AnthropicAdapter(Provider(api="anthropic", endpoint="http://ant"), "k"),
        "bedrock": BedrockAdapter(
            Provider(api="bedrock", endpoint="https://bedrock-runtime.eu-west-3.amazonaws.com"),
            CREDENTIAL,
        ),
        "broken": UnsupportedApi('unsupported api "x"'),
    }


def messages_call(**fields: Any) -> Call:
    body = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return Call(Operation.MESSAGES, {**body, **fields}, stream=False)


def test_operations_have_their_frontend() -> None:
    assert frontend_for(Operation.MESSAGES) is ANTHROPIC
    assert frontend_for(Operation.COUNT_TOKENS) is COUNT_TOKENS
    assert frontend_for(Operation.RESPONSES) is RESPONSES
    for operation in (Operation.CHAT, Operation.EMBEDDINGS, Operation.COMPLETIONS):
        assert frontend_for(operation) is OPENAI


def test_openai_clients_get_the_configs_adapters_untouched() -> None:
    configured = adapters()
    assert OPENAI.adapters(Call(Operation.CHAT, {}, False), configured) is configured


def test_native_adapters_stay_others_are_wrapped() -> None:
    configured = adapters()
    served = ANTHROPIC.adapters(messages_call(), configured)

    assert served["anthropic"] is configured["anthropic"]
    assert served["broken"] is configured["broken"]
    for name in ("openai", "bedrock"):
        wrapped = served[name]
        assert isinstance(wrapped, Translated)
        assert wrapped.inner is configured[name]
        assert wrapped.operations == frozenset({Operation.MESSAGES})
    assert served["bedrock"].stream_format == EVENT_STREAM  # type: ignore[union-attr]
    # The configured adapters are not changed by the wrapping.
    assert Operation.MESSAGES not in configured["openai"].operations  # type: ignore[union-attr]


def test_wrappers_are_made_only_for_the_targets_looked_up() -> None:
    served = ANTHROPIC.adapters(messages_call(), adapters())
    assert isinstance(served["openai"], Translated)
    assert list(served) == ["openai"]
    with pytest.raises(KeyError):
        served["unknown"]


def test_the_canonical_call_is_made_once_per_body() -> None:
    made: list[Call] = []

    class Counting(AnthropicFrontend):
        def to_canonical(self, call: Call) -> Call:
            made.append(call)
            return super().to_canonical(call)

    call = messages_call()
    served = Counting().adapters(call, adapters())
    first = served["openai"].build(call, "gpt-4o-mini")  # type: ignore[union-attr]
    served["bedrock"].build(call, "eu.amazon.nova-lite-v1:0")  # type: ignore[union-attr]

    assert len(made) == 1
    assert orjson.loads(first.body) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
    }
    # Data protection sends a target its own copy of the body: translated from that copy.
    protected = dataclasses.replace(
        call, body={**call.body, "messages": [{"role": "user", "content": "[EMAIL_1]"}]}
    )
    second = served["openai"].build(protected, "gpt-4o-mini")  # type: ignore[union-attr]
    assert len(made) == 2
    assert orjson.loads(second.body)["messages"] == [{"role": "user", "content": "[EMAIL_1]"}]
    assert orjson.loads(first.body)["messages"] == [{"role": "user", "content": "hi"}]


def test_a_refused_translation_is_an_anthropic_error_for_every_target() -> None:
    call = messages_call(thinking={"type": "enabled", "budget_tokens": 1024})
    served = ANTHROPIC.adapters(call, adapters())
    wrapped = served["openai"]
    assert isinstance(wrapped, Translated)
    with pytest.raises(UnsupportedRequest) as info:
        wrapped.build(call, "gpt-4o-mini")

    body = orjson.loads(wrapped.error_body(call, 400, info.value.body))
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert '"thinking"' in body["error"]["message"]


def test_provider_errors_go_through_the_wrapped_adapter_then_the_frontend() -> None:
    call = messages_call()
    wrapped = ANTHROPIC.adapters(call, adapters())["bedrock"]
    wrapped.build(call, "eu.amazon.nova-lite-v1:0")  # type: ignore[union-attr]
    # Bedrock's {"message"} error, made OpenAI by its adapter, then Anthropic by the frontend.
    body = wrapped.error_body(call, 400, b'{"message":"Malformed input request"}')  # type: ignore[union-attr]
    assert orjson.loads(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Malformed input request"},
    }
