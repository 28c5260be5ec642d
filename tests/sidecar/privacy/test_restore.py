"""Originals put back in the answers the client receives: whole answers of every client API,
and SSE streams where a placeholder may be split across deltas and bytes anywhere."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aiguillage.sidecar.privacy.restore import Restorer

ORIGINALS = {
    "[EMAIL_1]": "jean@example.fr",
    "[PHONE_1]": "+33 6 12 34 56 78",
    "[NAME_1]": 'Ann "Q" O\\Hara',
}


def restorer(operation: str) -> Restorer:
    return Restorer(operation, ORIGINALS)


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        name, data = None, b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        out.append((name, data.decode() if data == b"[DONE]" else orjson.loads(data)))
    return out


# -- whole answers ---------------------------------------------------------------------------


def test_chat_answer_text_and_tool_arguments() -> None:
    answer = {
        "id": "c1",
        "choices": [{"index": 0, "message": {
            "role": "assistant",
            "content": "Wrote to [EMAIL_1] for [NAME_1]; [EMAIL_9] is not ours.",
            "tool_calls": [{"id": "t", "type": "function", "function": {
                "name": "send", "arguments": '{"to": "[EMAIL_1]", "name": "[NAME_1]"}'}}],
        }}],
    }  # fmt: skip
    out = orjson.loads(restorer("chat.completions").body(orjson.dumps(answer)))
    message = out["choices"][0]["message"]
    assert (
        message["content"] == 'Wrote to jean@example.fr for Ann "Q" O\\Hara; [EMAIL_9] is not ours.'
    )
    args = orjson.loads(message["tool_calls"][0]["function"]["arguments"])
    assert args == {"to": "jean@example.fr", "name": 'Ann "Q" O\\Hara'}


def test_completions_responses_and_anthropic_answers() -> None:
    completions = {"choices": [{"index": 0, "text": "call [PHONE_1]"}]}
    out = orjson.loads(restorer("completions").body(orjson.dumps(completions)))
    assert out["choices"][0]["text"] == "call +33 6 12 34 56 78"

    responses = {"output": [
        {"type": "message", "content": [{"type": "output_text", "text": "to [EMAIL_1]"}]},
        {"type": "function_call", "name": "f", "arguments": '{"who":"[NAME_1]"}'},
    ]}  # fmt: skip
    out = orjson.loads(restorer("responses").body(orjson.dumps(responses)))
    assert out["output"][0]["content"][0]["text"] == "to jean@example.fr"
    assert orjson.loads(out["output"][1]["arguments"]) == {"who": 'Ann "Q" O\\Hara'}

    messages = {"content": [
        {"type": "text", "text": "for [EMAIL_1]"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"to": ["[EMAIL_1]"], "n": 2}},
    ]}  # fmt: skip
    out = orjson.loads(restorer("messages").body(orjson.dumps(messages)))
    assert out["content"][0]["text"] == "for jean@example.fr"
    assert out["content"][1]["input"] == {"to": ["jean@example.fr"], "n": 2}


def test_answers_without_placeholders_are_returned_byte_for_byte() -> None:
    raw = b'{"choices": [{"message": {"content": "no [brackets] of ours"}}]}'
    assert restorer("chat.completions").body(raw) is raw
    assert restorer("chat.completions").body(b"not json [EMAIL_1]") == b"not json [EMAIL_1]"


# -- streams ---------------------------------------------------------------------------------

TEXT = "Hi [EMAIL_1], your [PHONE_1] and [NAME_1] — [EMAIL_2], [not one], [EMAIL_"


def expected_text() -> str:
    return restorer("chat.completions").text(TEXT)


def cut(text: str, points: list[int]) -> list[str]:
    edges = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(edges)]


def rechunk(raw: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(raw), *(p % (len(raw) + 1) for p in points)})
    return [raw[a:b] for a, b in itertools.pairwise(edges)]


SPLITS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@settings(max_examples=200, deadline=None)
@given(SPLITS, SPLITS)
def test_chat_stream_restores_placeholders_split_anywhere(
    deltas: list[int], bytes_at: list[int]
) -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    raw = sse(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    )
    for piece in cut(TEXT, deltas):
        raw += sse(
            {**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        )
    raw += sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    raw += b"data: [DONE]\n\n"
    stream = restorer("chat.completions").stream()
    out = b"".join(stream.feed(chunk) for chunk in rechunk(raw, bytes_at)) + stream.close()
    got = events(out)
    text = "".join(d["choices"][0]["delta"].get("content") or "" for _, d in got if d != "[DONE]")
    assert text == expected_text()
    assert got[-1] == (None, "[DONE]")
    assert got[-2][1]["choices"][0]["finish_reason"] == "stop"


@settings(max_examples=100, deadline=None)
@given(SPLITS)
def test_chat_stream_tool_arguments_stay_valid_json(deltas: list[int]) -> None:
    arguments = '{"to": "[EMAIL_1]", "name": "[NAME_1]"}'
    raw = b""
    pieces = cut(arguments, deltas)
    for n, piece in enumerate(pieces):
        # The last piece comes with the finish reason, as some providers send it.
        finish = "tool_calls" if n == len(pieces) - 1 else None
        call = {"index": 0, "function": {"arguments": piece}}
        choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": finish}
        raw += sse({"choices": [choice]})
    stream = restorer("chat.completions").stream()
    got = events(stream.feed(raw) + stream.close())
    joined = "".join(
        call["function"]["arguments"]
        for _, d in got
        for call in d["choices"][0]["delta"].get("tool_calls", [])
    )
    assert orjson.loads(joined) == {"to": "jean@example.fr", "name": 'Ann "Q" O\\Hara'}


def test_a_stream_that_ends_without_finish_reason_releases_what_it_held() -> None:
    stream = restorer("chat.completions").stream()
    out = stream.feed(sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "to [EMA"}}]}))
    assert events(out)[0][1]["choices"][0]["delta"]["content"] == "to "
    tail = events(stream.close())
    assert tail == [
        (
            None,
            {
                "id": "c",
                "choices": [{"index": 0, "delta": {"content": "[EMA"}, "finish_reason": None}],
            },
        )
    ]


@settings(max_examples=100, deadline=None)
@given(SPLITS, SPLITS)
def test_anthropic_stream_text_and_input_json(deltas: list[int], json_deltas: list[int]) -> None:
    raw = sse({"type": "message_start", "message": {"id": "m", "content": []}}, "message_start")
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    raw += sse(start, "content_block_start")
    for piece in cut(TEXT, deltas):
        delta = {"type": "text_delta", "text": piece}
        raw += sse(
            {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
        )
    raw += sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    raw += sse({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}},
               "content_block_start")  # fmt: skip
    for piece in cut('{"to": "[NAME_1]"}', json_deltas):
        raw += sse({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece}},
                   "content_block_delta")  # fmt: skip
    raw += sse({"type": "content_block_stop", "index": 1}, "content_block_stop")
    raw += sse({"type": "message_stop"}, "message_stop")
    stream = restorer("messages").stream()
    got = events(stream.feed(raw) + stream.close())
    assert all(name == d["type"] for name, d in got)
    deltas_of = [d for _, d in got if d["type"] == "content_block_delta"]
    text = "".join(d["delta"]["text"] for d in deltas_of if d["index"] == 0)
    partial = "".join(d["delta"]["partial_json"] for d in deltas_of if d["index"] == 1)
    assert text == expected_text()
    assert orjson.loads(partial) == {"to": 'Ann "Q" O\\Hara'}
    # every delta comes before the stop of its block
    stops = [i for i, (_, d) in enumerate(got) if d["type"] == "content_block_stop"]
    last_text = max(
        i
        for i, (_, d) in enumerate(got)
        if d.get("index") == 0 and d["type"] == "content_block_delta"
    )
    assert last_text < stops[0]


@settings(max_examples=100, deadline=None)
@given(SPLITS)
def test_responses_stream(deltas: list[int]) -> None:
    common = {"item_id": "i", "output_index": 0, "content_index": 0}
    raw = b""
    for n, piece in enumerate(cut(TEXT, deltas)):
        raw += sse({"type": "response.output_text.delta", **common, "delta": piece,
                    "sequence_number": n}, "response.output_text.delta")  # fmt: skip
    raw += sse(
        {"type": "response.output_text.done", **common, "text": TEXT}, "response.output_text.done"
    )
    done = {"output": [{"type": "message", "content": [{"type": "output_text", "text": TEXT}]}]}
    raw += sse({"type": "response.completed", "response": done}, "response.completed")
    stream = restorer("responses").stream()
    got = events(stream.feed(raw) + stream.close())
    text = "".join(d["delta"] for _, d in got if d["type"] == "response.output_text.delta")
    assert text == expected_text()
    assert [d["text"] for _, d in got if d["type"] == "response.output_text.done"] == [
        expected_text()
    ]
    completed = next(d for _, d in got if d["type"] == "response.completed")
    assert completed["response"]["output"][0]["content"][0]["text"] == expected_text()
    kinds = [d["type"] for _, d in got]
    assert kinds.index("response.output_text.done") == len(kinds) - 2


def test_completions_stream() -> None:
    raw = sse({"choices": [{"index": 0, "text": "call [PHO", "finish_reason": None}]})
    raw += sse({"choices": [{"index": 0, "text": "NE_1] now", "finish_reason": "stop"}]})
    stream = restorer("completions").stream()
    got = events(stream.feed(raw) + stream.close())
    assert "".join(d["choices"][0]["text"] for _, d in got) == "call +33 6 12 34 56 78 now"


def test_events_it_does_not_touch_pass_byte_for_byte() -> None:
    raw = b': keep-alive\n\nevent: ping\ndata: {"type": "ping"}\n\ndata: {"choices": []}\r\n\r\n'
    stream = restorer("chat.completions").stream()
    assert stream.feed(raw) + stream.close() == raw


def test_text_held_when_a_choice_finishes_goes_after_that_chunks_own_text() -> None:
    def chunk(arguments: str, finish: str | None) -> bytes:
        call = {"index": 0, "function": {"arguments": arguments}}
        return sse(
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": finish}]}
        )

    stream = restorer("chat.completions").stream()
    got = events(stream.feed(chunk("ab [EM", None) + chunk("AIL_1] c [NA", "tool_calls")))
    pieces = [d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for _, d in got]
    assert pieces == ["ab ", "jean@example.fr c [NA"]
    assert stream.close() == b""


def test_anthropic_tool_use_given_whole_in_its_start_event() -> None:
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {"to": ["[EMAIL_1]"]}}
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    stream = restorer("messages").stream()
    ((name, data),) = events(stream.feed(sse(start, "content_block_start")))
    assert name == "content_block_start"
    assert data["content_block"]["input"] == {"to": ["jean@example.fr"]}
