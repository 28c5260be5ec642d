"""Token counts, sanitised in one place (``adapters/base.py``), and what each adapter makes of
usage that is not a token count."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aiguillage.sidecar.adapters.anthropic import EventRelay, TokenCounts
from aiguillage.sidecar.adapters.base import MAX_TOKENS, Call, Operation, Usage, token_count
from aiguillage.sidecar.adapters.google_genai import GenerateContentStream, read_generate_response
from aiguillage.sidecar.adapters.openai import OpenAIStream, usage_of
from aiguillage.sidecar.adapters.vertex_ai import VertexAIAdapter
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer


@pytest.mark.parametrize(
    ("value", "count"), [(None, 0), (0, 0), (12, 12), (12.0, 12), (MAX_TOKENS, MAX_TOKENS)]
)
def test_token_counts(value: Any, count: int) -> None:
    assert token_count(value, "x") == count


BAD = [-1, MAX_TOKENS + 1, 10**30, 1.5, 1e300, True, False, "12", [], {}]


@pytest.mark.parametrize("value", BAD, ids=[repr(v) for v in BAD])
def test_what_is_not_a_token_count_is_a_malformed_answer(value: Any) -> None:
    with pytest.raises(MalformedAnswer, match="usage prompt_tokens"):
        token_count(value, "prompt_tokens")


def test_usage_totals_are_bounded_too() -> None:
    with pytest.raises(MalformedAnswer, match="usage totals"):
        Usage(MAX_TOKENS + 1, 0)
    with pytest.raises(MalformedAnswer, match="usage totals"):
        Usage(0, -1)


# Where each adapter reads usage, a bad count makes the answer malformed (never a count).
@pytest.mark.parametrize("value", [-5, "7", 2.5, True, 10**12])
def test_every_adapter_refuses_a_bad_count(value: Any) -> None:
    with pytest.raises(MalformedAnswer):
        usage_of({"usage": {"prompt_tokens": value}})
    with pytest.raises(MalformedAnswer):
        OpenAIStream(True).feed(
            None, orjson.dumps({"choices": [], "usage": {"total": 1, "completion_tokens": value}})
        )
    with pytest.raises(MalformedAnswer):
        TokenCounts().update({"cache_read_input_tokens": value})
    with pytest.raises(MalformedAnswer):
        EventRelay().feed(
            "message_delta",
            orjson.dumps({"type": "message_delta", "usage": {"output_tokens": value}}),
        )
    meta = orjson.dumps({"candidates": [], "usageMetadata": {"thoughtsTokenCount": value}})
    with pytest.raises(MalformedAnswer):
        read_generate_response(meta, "m")
    with pytest.raises(MalformedAnswer):
        GenerateContentStream("m", True).feed(None, meta)
    vertex = VertexAIAdapter(
        Provider(
            api="vertex-ai",
            endpoint="https://europe-west4-aiplatform.googleapis.com",
            options={"project": "p"},
        ),
        None,
    )
    prediction = {"embeddings": {"values": [0.5], "statistics": {"token_count": value}}}
    call = Call(Operation.EMBEDDINGS, {"model": "e", "input": "x"}, False)
    with pytest.raises(MalformedAnswer):
        vertex.read_response(call, orjson.dumps({"predictions": [prediction]}), "e")


@pytest.mark.parametrize("usage", ["12", 5, [1]])
def test_a_usage_that_is_not_an_object_is_a_malformed_answer(usage: Any) -> None:
    with pytest.raises(MalformedAnswer, match="usage"):
        usage_of({"usage": usage})
    with pytest.raises(MalformedAnswer, match="usageMetadata"):
        read_generate_response(orjson.dumps({"usageMetadata": usage}), "m")
