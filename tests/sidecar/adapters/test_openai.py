"""The OpenAI wire-schema adapter (``adapters/openai.py``): pure translation, no network."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiguillage.sidecar.adapters import UnsupportedApi, adapter_for
from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.adapters.openai import OpenAIAdapter, OpenAIStream
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer, UpstreamProtocol

PROVIDER = Provider(api="openai", endpoint="https://api.mistral.ai/v1/", location="FR")


def adapter(key: str | None = "sk-provider") -> OpenAIAdapter:
    return OpenAIAdapter(PROVIDER, key)


def chat(stream: bool = False, **body: Any) -> Call:
    options = body.get("stream_options")
    return Call(
        Operation.CHAT,
        {"model": "public-name", "messages": [{"role": "user", "content": "hi"}], **body},
        stream,
        client_wants_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def test_registered_under_its_api_name() -> None:
    assert adapter_for("openai") is OpenAIAdapter


def test_unknown_api_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedApi, match=r'unsupported api "soap".*speaks: .*openai'):
        adapter_for("soap")


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        (Operation.CHAT, "/chat/completions"),
        (Operation.EMBEDDINGS, "/embeddings"),
        (Operation.COMPLETIONS, "/completions"),
        (Operation.RESPONSES, "/responses"),
    ],
)
def test_build_targets_the_operation_path(operation: Operation, path: str) -> None:
    req = adapter().build(Call(operation, {"model": "x"}, False), "m")
    assert req.url == "https://api.mistral.ai/v1" + path


def test_messages_is_not_an_openai_operation() -> None:
    assert Operation.MESSAGES not in OpenAIAdapter.operations


def test_build_replaces_only_the_model() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    call = chat(tools=tools, response_format={"type": "json_object"}, temperature=0.2)

    req = adapter().build(call, "mistral-small-latest")

    body = orjson.loads(req.body)
    assert body == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "response_format": {"type": "json_object"},
        "temperature": 0.2,
    }
    assert req.headers == {
        "content-type": "application/json",
        "authorization": "Bearer sk-provider",
    }


def test_no_credential_no_authorization() -> None:
    assert "authorization" not in adapter(None).build(chat(), "m").headers


def test_stream_always_asks_for_usage_and_keeps_other_stream_options() -> None:
    body = orjson.loads(adapter().build(chat(True), "m").body)
    assert body["stream_options"] == {"include_usage": True}

    call = chat(True, stream_options={"include_obfuscation": False})
    body = orjson.loads(adapter().build(call, "m").body)
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_no_stream_options_added_where_they_do_not_apply() -> None:
    assert "stream_options" not in orjson.loads(adapter().build(chat(False), "m").body)
    responses = Call(Operation.RESPONSES, {"model": "x", "input": "hi"}, True)
    assert "stream_options" not in orjson.loads(adapter().build(responses, "m").body)


def test_read_response_passes_the_body_through_and_reads_usage() -> None:
    raw = orjson.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 30}})
    body, usage = adapter().read_response(chat(), raw, "m")
    assert body == raw
    assert (usage.input_tokens, usage.output_tokens) == (12, 30)


def test_read_response_usage_of_the_responses_api() -> None:
    raw = orjson.dumps({"output": [], "usage": {"input_tokens": 5, "output_tokens": 7}})
    responses = Call(Operation.RESPONSES, {"model": "x", "input": "hi"}, False)
    _, usage = adapter().read_response(responses, raw, "m")
    assert (usage.input_tokens, usage.output_tokens) == (5, 7)


def test_read_response_without_usage() -> None:
    embeddings = Call(Operation.EMBEDDINGS, {"model": "x", "input": "hi"}, False)
    _, usage = adapter().read_response(embeddings, b'{"data": []}', "m")
    assert (usage.input_tokens, usage.output_tokens) == (0, 0)


@pytest.mark.parametrize("raw", [b"<html>502 Bad Gateway</html>", b"[1, 2]", b'{"a": '])
def test_read_response_rejects_what_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocol):
        adapter().read_response(chat(), raw, "m")


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        (Operation.CHAT, {}, '"choices" that is not a list of objects'),
        (Operation.CHAT, {"choices": {"0": {}}}, '"choices" that is not a list of objects'),
        (Operation.CHAT, {"choices": ["hi"]}, '"choices" that is not a list of objects'),
        (Operation.CHAT, {"choices": [{"message": "hi"}]}, 'choice whose "message" is not'),
        (Operation.CHAT, {"choices": [{"index": 0}]}, 'choice whose "message" is not'),
        (Operation.COMPLETIONS, {"choices": None}, '"choices" that is not a list'),
        (Operation.EMBEDDINGS, {"data": "x"}, '"data" that is not a list of objects'),
        (Operation.RESPONSES, {"output": 1}, '"output" that is not a list of objects'),
    ],
)
def test_read_response_refuses_results_the_client_could_not_read(
    operation: Operation, body: dict[str, Any], message: str
) -> None:
    call = Call(operation, {"model": "x"}, False)
    with pytest.raises(MalformedAnswer, match=message):
        adapter().read_response(call, orjson.dumps(body), "m")


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": 5},
        {"choices": None},
        {"choices": [{"index": 0, "delta": "x"}]},
        {"choices": [{"index": 0, "delta": None}]},
        {"choices": [7]},
    ],
)
def test_stream_chunks_the_client_could_not_read_are_malformed(chunk: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswer):
        OpenAIStream(False).feed(None, orjson.dumps(chunk))


def test_stream_chunks_without_results_or_delta_pass() -> None:
    # Azure's prompt filter results, a usage chunk, a content filter chunk without delta.
    for chunk in (
        {"choices": [], "prompt_filter_results": []},
        {"usage": {"prompt_tokens": 1, "completion_tokens": 2}},
        {"choices": [{"index": 0, "finish_reason": None, "content_filter_results": {}}]},
    ):
        OpenAIStream(True).feed(None, orjson.dumps(chunk))


def test_each_operations_stream_checks_its_own_results_shape() -> None:
    # Legacy completions: a list of choices, which have text, not a delta.
    completions = OpenAIStream(False, Operation.COMPLETIONS)
    assert completions.feed(None, b'{"choices": [{"index": 0, "text": "Hi"}]}')
    with pytest.raises(MalformedAnswer, match='"choices" that is not a list of objects'):
        completions.feed(None, b'{"choices": [7]}')
    # Responses events hold no list of results: their "choices" is nothing to check.
    responses = OpenAIStream(False, Operation.RESPONSES)
    assert responses.feed("response.output_text.delta", b'{"type": "x", "choices": 5}')


# -- streams -------------------------------------------------------------------------------------

CONTENT = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None})
USAGE_ONLY = orjson.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}})


def feed_all(stream: OpenAIStream, *events: tuple[str | None, bytes]) -> bytes:
    return b"".join(b for e, d in events for b in stream.feed(e, d))


def test_content_chunks_pass_through_as_sse() -> None:
    s = OpenAIStream(client_wants_usage=False)
    assert feed_all(s, (None, CONTENT)) == b"data: " + CONTENT + b"\n\n"
    assert not s.done


def test_usage_chunk_is_read_and_dropped_unless_asked_for() -> None:
    s = OpenAIStream(client_wants_usage=False)
    out = feed_all(s, (None, CONTENT), (None, USAGE_ONLY), (None, b"[DONE]"))

    assert out == b"data: " + CONTENT + b"\n\ndata: [DONE]\n\n"
    assert (s.usage.input_tokens, s.usage.output_tokens) == (3, 9)
    assert s.done


def test_usage_chunk_is_forwarded_when_asked_for() -> None:
    s = OpenAIStream(client_wants_usage=True)
    assert feed_all(s, (None, USAGE_ONLY)) == b"data: " + USAGE_ONLY + b"\n\n"
    assert s.usage.output_tokens == 9


def test_usage_on_a_content_chunk_keeps_the_content() -> None:
    both = orjson.dumps(
        {"choices": [{"delta": {"content": "end"}}], "usage": {"completion_tokens": 4}}
    )
    s = OpenAIStream(client_wants_usage=False)
    assert feed_all(s, (None, both)) == b"data: " + both + b"\n\n"
    assert s.usage.output_tokens == 4


@pytest.mark.parametrize(
    "data",
    [
        b'{"error": {"message": "overloaded", "type": "server_error"}}',
        b'{"id": "x", "choices": [{"delta": {"content": "garbled',
        b"not json at all",
        b"[1, 2, 3]",
    ],
    ids=["error-event", "garbled", "not-json", "not-an-object"],
)
def test_bad_chunks_raise_instead_of_reaching_the_client(data: bytes) -> None:
    with pytest.raises(UpstreamProtocol):
        list(OpenAIStream(client_wants_usage=False).feed(None, data))


def test_responses_stream_keeps_event_names_and_ends_on_completed() -> None:
    created = orjson.dumps({"type": "response.created", "response": {"error": None}})
    delta = orjson.dumps({"type": "response.output_text.delta", "delta": "Hi"})
    completed = orjson.dumps(
        {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 2, "output_tokens": 8}, "error": None},
        }
    )
    s = OpenAIStream(client_wants_usage=False)

    out = feed_all(
        s,
        ("response.created", created),
        ("response.output_text.delta", delta),
    )
    assert out == (
        b"event: response.created\ndata: " + created + b"\n\n"
        b"event: response.output_text.delta\ndata: " + delta + b"\n\n"
    )
    assert not s.done

    feed_all(s, ("response.completed", completed))
    assert s.done
    assert (s.usage.input_tokens, s.usage.output_tokens) == (2, 8)


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("error", b'{"type": "error", "code": "server_error", "message": "boom"}'),
        ("response.failed", b'{"type": "response.failed", "response": {"error": {"code": "x"}}}'),
    ],
)
def test_responses_stream_errors_raise(event: str, data: bytes) -> None:
    with pytest.raises(UpstreamProtocol):
        list(OpenAIStream(client_wants_usage=False).feed(event, data))


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (b'{"error": {"message": "m", "type": "t", "code": "c"}}', "m", "c"),  # as it is
        (
            b'{"object": "error", "message": "bad model", "type": "x", "code": 404}',
            "bad model",
            None,
        ),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", None),
        (b"", "provider answered HTTP 404", None),
        (b'{"error": "model not found"}', '{"error": "model not found"}', None),
        (b'{"error": {"message": 5, "type": "t"}}', '{"error": {"message": 5, "type": "t"}}', None),
    ],
)
def test_relayed_errors_are_openai_errors(body: bytes, message: str, code: str | None) -> None:
    relayed = orjson.loads(adapter().error_body(chat(), 404, body))
    assert relayed["error"]["message"] == message
    assert relayed["error"]["code"] == code
    assert isinstance(relayed["error"]["type"], str)


def test_nothing_follows_done() -> None:
    stream = OpenAIStream(False)
    assert list(stream.feed(None, b"[DONE]")) == [b"data: [DONE]\n\n"]
    assert list(stream.feed(None, CONTENT)) == []


# -- a batch of events in one pass ---------------------------------------------------------------

CHUNK_EVENTS: list[tuple[str | None, bytes]] = [
    (None, CONTENT),
    (None, orjson.dumps({"choices": [{"index": 0, "delta": {"content": "a\nb"}}]})),
    (None, USAGE_ONLY),
    (None, orjson.dumps({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}})),
    (None, b"[DONE]"),
    (None, b"{not json"),
    (None, b"[1, 2]"),
    (None, b'{"choices": "nope"}'),
    (None, b'{"choices": [{"delta": 3}]}'),
    (None, b'{"error": {"message": "overloaded"}}'),
    (None, b'{"type": "response.completed", "response": {}}'),
    (None, b'{"a": 1}\n{"b": 2}'),  # two lines of data in one event
    ("error", CONTENT),
    ("message", CONTENT),
    (None, b'{"choices": [], "usage": {"prompt_tokens": -4}}'),
]


def relayed(stream: OpenAIStream, events: list[tuple[str | None, bytes]], at_once: bool) -> Any:
    """What the client gets, what is raised, and what the stream counted."""
    out: list[bytes] = []
    raised: type[BaseException] | None = None
    try:
        if at_once:
            stream.feed_all(events, out)
        else:
            for event, data in events:
                out.extend(stream.feed(event, data))
    except Exception as exc:
        raised = type(exc)
    return b"".join(out), raised, stream.usage, stream.done, stream.relayed


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.sampled_from(CHUNK_EVENTS), max_size=12),
    wants_usage=st.booleans(),
    operation=st.sampled_from([Operation.CHAT, Operation.COMPLETIONS, Operation.RESPONSES]),
)
def test_a_batch_in_one_pass_relays_exactly_what_one_event_at_a_time_does(
    events: list[tuple[str | None, bytes]], wants_usage: bool, operation: Operation
) -> None:
    one_by_one = relayed(OpenAIStream(wants_usage, operation), events, at_once=False)
    assert relayed(OpenAIStream(wants_usage, operation), events, at_once=True) == one_by_one


def test_a_run_of_plain_chunks_goes_out_as_one_piece() -> None:
    out: list[bytes] = []
    OpenAIStream(False).feed_all([(None, CONTENT)] * 3 + [(None, b"[DONE]")], out)
    assert out == [(b"data: " + CONTENT + b"\n\n") * 3, b"data: [DONE]\n\n"]


def test_the_chunks_before_a_bad_one_are_kept_for_the_client() -> None:
    out: list[bytes] = []
    with pytest.raises(MalformedAnswer):
        OpenAIStream(False).feed_all([(None, CONTENT), (None, CONTENT), (None, b"{bad")], out)
    assert b"".join(out) == (b"data: " + CONTENT + b"\n\n") * 2
