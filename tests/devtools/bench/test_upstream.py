"""The benchmark's Go upstream (``hack/upstream``) answers what the Python OpenAI simulator
answers, for everything the benchmark sends: same JSON keys and types, same SSE events and
final usage, the same 401 without the key, the same admin API; and the sidecar's real OpenAI
adapter relays and counts both alike. Both upstreams run side by side; the Go one is skipped
(with the reason) only when it cannot be built here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aiguillage.devtools.bench import systems, tools
from aiguillage.devtools.bench.procs import Procs

KEY = systems.UPSTREAM_KEY
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Upstreams:
    procs: Procs
    python: str
    go: str

    @property
    def both(self) -> tuple[str, str]:
        return self.python, self.go


@pytest.fixture(scope="module")
def go_program() -> tools.Program:
    program = tools.build_upstream()
    if program.kind != "go":
        pytest.skip(f"the Go upstream cannot be built here: {program.note}")
    return program


@pytest.fixture
def upstreams(tmp_path: Path, go_program: tools.Program) -> Iterator[Upstreams]:
    with Procs(tmp_path / "logs") as procs:
        _, python = systems.start_upstream(procs, cpus=None, chunks=4, interval=0.0)
        _, go = systems.start_upstream(procs, cpus=None, chunks=4, interval=0.0, program=go_program)
        yield Upstreams(procs, python, go)


def shape(value: Any) -> Any:
    """The JSON keys and value types of a document, values left out."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def post(url: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return systems.http_request(
        f"{url}/v1/chat/completions", raw, AUTH if headers is None else headers
    )


def events(body: bytes) -> list[Any]:
    """The ``data:`` events of an SSE body, JSON decoded ("[DONE]" kept as is)."""
    out: list[Any] = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": systems.PROMPT}]}


def test_the_answer_has_the_same_fields_text_and_usage(upstreams: Upstreams) -> None:
    answers = []
    for url in upstreams.both:
        status, body = post(url, CHAT)
        assert status == 200, body
        answers.append(json.loads(body))
    python, go = answers
    assert shape(go) == shape(python)
    assert go["object"] == "chat.completion"
    assert go["choices"] == python["choices"]
    assert go["usage"] == python["usage"]
    assert go["usage"]["prompt_tokens"] == len(systems.PROMPT.split())
    assert go["model"] == python["model"] == "sim-small"


def test_64_chunks_make_the_answer_of_about_1_kb_of_both(upstreams: Upstreams) -> None:
    sizes = []
    for url in upstreams.both:
        with systems.stream_shape(url, chunks=64, interval=0.0):
            status, body = post(url, CHAT)
        assert status == 200
        sizes.append(len(body))
        text = json.loads(body)["choices"][0]["message"]["content"]
        assert len(text.split()) == 64
    assert sizes[0] == sizes[1]
    assert 800 < sizes[1] < 1400


@pytest.mark.parametrize("include_usage", [True, False])
def test_the_stream_has_the_same_events_and_final_usage(
    upstreams: Upstreams, include_usage: bool
) -> None:
    body = {**CHAT, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    streams = []
    for url in upstreams.both:
        req = systems.urllib.request.Request(
            f"{url}/v1/chat/completions", json.dumps(body).encode(), AUTH
        )
        with systems.urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert resp.headers["Cache-Control"] == "no-cache"
            streams.append(events(resp.read()))
    python, go = streams
    assert go[-1] == python[-1] == "[DONE]"
    assert [shape(e) for e in go] == [shape(e) for e in python]
    assert [e["choices"] for e in go[:-1]] == [e["choices"] for e in python[:-1]]
    deltas = [e["choices"][0]["delta"] for e in go[:-1] if e["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert len([d for d in deltas if d.get("content")]) == 4
    assert go[-2 if not include_usage else -3]["choices"][0]["finish_reason"] == "stop"
    if include_usage:
        assert go[-2]["choices"] == []
        assert go[-2]["usage"] == python[-2]["usage"]
        assert go[-2]["usage"]["completion_tokens"] == len(deltas[1]["content"].split()) + len(
            "".join(d.get("content", "") for d in deltas[2:]).split()
        )
    else:
        assert all("usage" not in e for e in go[:-1])


def test_the_chunks_are_paced_by_the_configured_interval(upstreams: Upstreams) -> None:
    """A stream of 10 deltas 30 ms apart lasts at least 9 intervals (no upper bound: a busy
    machine only makes it longer)."""
    body = json.dumps({**CHAT, "stream": True}).encode()
    with systems.stream_shape(upstreams.go, chunks=10, interval=0.03):
        began = time.monotonic()
        status, answer = systems.http_request(f"{upstreams.go}/v1/chat/completions", body, AUTH)
        took = time.monotonic() - began
    assert status == 200
    assert len(events(answer)) == 1 + 10 + 1 + 1  # role, deltas, finish, [DONE]
    assert took >= 9 * 0.03


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Bearer sk-not-the-key-1234"}, "invalid_api_key")],
    ids=["no key", "wrong key"],
)
def test_without_the_key_both_answer_openais_401(
    upstreams: Upstreams, headers: dict[str, str], code: str | None
) -> None:
    answers = []
    for url in upstreams.both:
        status, body = post(url, CHAT, headers)
        assert status == 401
        answers.append(json.loads(body))
    assert answers[1] == answers[0]
    assert answers[1]["error"]["code"] == code
    assert answers[1]["error"]["type"] == "invalid_request_error"
    assert "sk-not-the-key-1234" not in json.dumps(answers[1])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        {"messages": CHAT["messages"]},
        {"model": "sim-small", "messages": []},
        {**CHAT, "max_tokens": 3},
        {**CHAT, "max_completion_tokens": 2, "max_tokens": 5},
        {**CHAT, "max_tokens": 3.0},
    ],
    ids=["invalid JSON", "not an object", "no model", "no messages", "max_tokens",
         "max_completion_tokens first", "a float is no limit"],
)  # fmt: skip
def test_bad_and_limited_requests_get_the_same_answer(
    upstreams: Upstreams, body: dict[str, Any] | bytes
) -> None:
    answers = []
    for url in upstreams.both:
        status, raw = post(url, body)
        answer = json.loads(raw)
        for volatile in ("id", "created"):
            answer.pop(volatile, None)
        answers.append((status, answer))
    assert answers[1] == answers[0]


def test_what_the_go_upstream_does_not_simulate_is_refused_by_name(upstreams: Upstreams) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    status, body = post(upstreams.go, {**CHAT, "tools": [tool]})
    assert status == 400
    assert "python -m aiguillage.devtools.simulators" in json.loads(body)["error"]["message"]
    status, body = systems.http_request(f"{upstreams.go}/_sim/faults")
    assert status == 404
    assert "fault injection" in json.loads(body)["error"]
    status, body = systems.http_request(
        f"{upstreams.go}/_sim/config", json.dumps({"echo": True}).encode()
    )
    assert status == 400
    assert "echo" in json.loads(body)["error"]


def test_the_admin_api_round_trips_the_stream_shape(upstreams: Upstreams) -> None:
    for path in ("/_sim/health", "/_sim/config"):
        python, go = (systems.http_request(f"{url}{path}") for url in upstreams.both)
        assert go[0] == python[0] == 200
        assert json.loads(go[1]) == json.loads(python[1])
    new_shape = json.dumps({"chunks": 7, "chunk_interval": 0.001}).encode()
    for bad in ({"chunks": 0}, {"chunks": 2.5}, {"chunk_interval": -1}, {"speed": 1}):
        python, go = (
            systems.http_request(f"{url}/_sim/config", json.dumps(bad).encode())
            for url in upstreams.both
        )
        assert go[0] == python[0] == 400
        assert json.loads(go[1]) == json.loads(python[1])
    python, go = (systems.http_request(f"{url}/_sim/config", new_shape) for url in upstreams.both)
    assert go[0] == python[0] == 200
    assert json.loads(go[1]) == json.loads(python[1])
    config = json.loads(systems.http_request(f"{upstreams.go}/_sim/config")[1])
    assert (config["chunks"], config["chunk_interval"]) == (7, 0.001)
    status, body = post(upstreams.go, {**CHAT, "stream": True})
    assert status == 200
    assert len(events(body)) == 1 + 7 + 1 + 1


def _audit_usage(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_the_sidecar_relays_and_counts_both_upstreams_alike(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    seen = []
    for name, url in zip(("python", "go"), upstreams.both, strict=True):
        sidecar = systems.start_sidecar(upstreams.procs, url, tmp_path / name, cpus=None)
        status, body = systems.http_request(sidecar.chat_url, systems.request_body(False))
        assert status == 200, body
        answer = json.loads(body)["choices"][0]["message"]["content"]
        status, streamed = systems.http_request(sidecar.chat_url, systems.request_body(True))
        assert status == 200, streamed
        assert events(streamed)[-1] == "[DONE]"
        text = "".join(
            e["choices"][0]["delta"].get("content") or ""
            for e in events(streamed)[:-1]
            if e.get("choices")
        )
        records = _audit_usage(tmp_path / name / "sidecar" / "audit.jsonl", 2)
        assert [r["outcome"] for r in records] == ["ok", "ok"], records
        seen.append((answer, text, [r["usage"] for r in records]))
    assert seen[1] == seen[0]
    answer, text, usage = seen[1]
    assert answer == text
    assert answer.startswith("Hello from upstream!")
    assert usage[0]["outputTokens"] == len(answer.split()) > 0
    assert usage[1] == usage[0]
