"""Fuzz tier: hostile answers from every provider adapter, whole and streamed, through a sidecar.

Each example takes a real answer of the provider's simulator (a text answer or a tool call,
captured once) and breaks it as a careless or hostile provider would: values of the wrong
type, missing fields, huge or negative numbers, strings where objects belong, bytes that are
not UTF-8, CRs and multi-line data inside SSE, event names and AWS event-stream headers that
are garbage, truncation anywhere, an end marker that never comes, the wrong content type, an
error status. The simulator serves exactly those bytes (a ``raw`` fault) to a real sidecar,
which an OpenAI client asks through a one-target route. Whatever the bytes, the client gets:

- a whole answer: a 200 whose body an OpenAI SDK reads (the sidecar's own translations
  validate as the SDK's ``ChatCompletion``; answers passed through have a ``choices`` list of
  objects with a ``message`` object), or an OpenAI error (``error.message`` a string);
- a stream: a 200 of SSE frames that are chunks (validated as the SDK's
  ``ChatCompletionChunk`` when translated) ending with ``data: [DONE]`` or with one error
  event, or an OpenAI error before any byte;

and the audit record is truthful: its status is the client's, ``ok`` only for a complete
answer, ``stream_error`` for a stream that ended with an error event, usage within bounds.
Nothing is logged at ERROR (no unhandled exception in the sidecar). Marked ``fuzz``: run by
``make test-fuzz`` (part of ``make test``), about a minute for the six adapters with 150
examples per adapter and mode; ``AIGUILLAGE_FUZZ_EXAMPLES=1000 make test-fuzz`` goes deeper.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators import Fault
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar import upstream
from aiguillage.sidecar.adapters.base import MAX_TOKENS, Adapter, Call, Operation
from aiguillage.sidecar.config import SidecarConfig, Target, Timeouts
from aiguillage.sidecar.main import Sidecar
from tests.sidecar._formats import ROWS, located
from tests.sidecar.conftest import Raw, RunningSidecar, route, write_files

pytestmark = pytest.mark.fuzz

APIS = sorted(ROWS)
# Adapters whose answers the sidecar writes itself (the others pass the provider's through).
TRANSLATED = {"anthropic", "bedrock", "gemini", "vertex-ai"}
# Per adapter and mode; raise it for a deeper run.
EXAMPLES = int(os.environ.get("AIGUILLAGE_FUZZ_EXAMPLES", "150"))
TIMEOUTS = Timeouts(connect=2, first_token=5, stream_idle=5, total=10)
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]

# -- the world: one simulator per adapter, one sidecar, captured answers --------------------------


@dataclass
class Template:
    """A real answer of a provider: its content type and its body, parsed."""

    content_type: str
    whole: Any = None  # a JSON document (whole answers)
    events: list[tuple[str | None, bytes]] | None = None  # SSE events
    frames: list[tuple[dict[str, Any], bytes]] | None = None  # AWS event-stream frames


@dataclass
class World:
    sidecar: RunningSidecar
    sims: dict[str, Simulator]
    templates: dict[tuple[str, bool], list[Template]]


class ErrorLogs(logging.Handler):
    """Every record logged at ERROR or above while the fuzz runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLogs]:
    handler = ErrorLogs()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def world(lt: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    sims = {api: ROWS[api].simulator() for api in APIS}
    for sim in sims.values():
        lt.run(sim.start())
    root = tmp_path_factory.mktemp("fuzz")
    config = SidecarConfig(
        namespace="fuzz",
        providers={
            f"p-{api}": located(ROWS[api], sims[api].url).model_copy(
                update={"credential": f"p-{api}"}
            )
            for api in APIS
        },
        routes={
            api: route(api, Target(provider=f"p-{api}", model=ROWS[api].model), timeouts=TIMEOUTS)
            for api in APIS
        },
    )
    credentials = {f"p-{api}": ROWS[api].credential for api in APIS}
    write_files(root / "config", root / "credentials", config, credentials)
    sidecar = Sidecar(root / "config", root / "credentials", str(root / "audit.jsonl"), 3600)
    lt.run(sidecar.start("127.0.0.1:0"))
    try:
        running = RunningSidecar(lt, sidecar, root)
        templates = {
            (api, stream): [capture(lt, running, api, stream, tools) for tools in (False, True)]
            for api in APIS
            for stream in (False, True)
        }
        yield World(running, sims, templates)
    finally:
        lt.run(sidecar.stop())
        for sim in sims.values():
            lt.run(sim.stop())


def client_body(api: str, stream: bool, tools: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": api, "messages": ASK, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = TOOLS
    return body


def capture(lt: LoopThread, sc: RunningSidecar, api: str, stream: bool, tools: bool) -> Template:
    """The provider's own answer to what the sidecar sends it for this client request."""
    snapshot = sc.runtime.snapshot
    assert snapshot is not None
    adapter = snapshot.adapters[f"p-{api}"]
    assert isinstance(adapter, Adapter)
    call = Call(Operation.CHAT, client_body(api, stream, tools), stream, client_wants_usage=True)
    request = adapter.build(call, ROWS[api].model)

    async def fetch() -> tuple[str, bytes]:
        async with (
            aiohttp.ClientSession(auto_decompress=True) as http,
            http.post(request.url, data=request.body, headers=request.headers) as resp,
        ):
            assert resp.status == 200, await resp.read()
            return resp.headers["content-type"], await resp.read()

    content_type, raw = lt.run(fetch())
    if not stream:
        return Template(content_type, whole=orjson.loads(raw))
    if api == "bedrock":
        buffer = EventStreamBuffer()
        buffer.add_data(raw)
        return Template(content_type, frames=[(dict(m.headers), m.payload) for m in buffer])
    parser = upstream.SSEParser(1 << 30)
    return Template(content_type, events=parser.feed(raw) + parser.end())


# -- breaking answers ----------------------------------------------------------------------------

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([-1, 10**12, 10**30, 1e300, 2.5, -0.0, "", "12", "stop", "\u0000"]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["type", "text", "index", "x"]), st.integers(0, 2), max_size=2),
)


def paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*at, index))


def mutated(data: st.DataObject, value: Any) -> Any:
    """``value`` with one to three of its parts replaced, removed or wrapped."""
    value = copy.deepcopy(value)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(list(paths(value))), label="path")
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "wrap"]), label="op")
        if not path:
            value = data.draw(HOSTILE) if op == "replace" else [value]
            continue
        *head, last = path
        parent = value
        for key in head:
            parent = parent[key]
        if op == "replace":
            parent[last] = data.draw(HOSTILE, label="value")
        elif op == "delete":
            del parent[last]
        else:
            parent[last] = [parent[last]]
    return value


def dumps(value: Any, data: st.DataObject) -> bytes:
    # json (not orjson): it writes integers past 64 bits as they are.
    indent = 1 if data.draw(st.integers(0, 9), label="multi-line") == 0 else None
    return json.dumps(value, ensure_ascii=False, indent=indent).encode()


def corrupted(data: st.DataObject, raw: bytes) -> bytes:
    """Sometimes cut short, or with bytes that are not UTF-8 or a CR inserted."""
    kind = data.draw(st.sampled_from(["keep"] * 12 + ["cut", "bad-utf8", "cr"]), label="bytes")
    if kind == "keep" or not raw:
        return raw
    at = data.draw(st.integers(0, len(raw) - 1), label="at")
    if kind == "cut":
        return raw[:at]
    return raw[:at] + (b"\xff\xc3" if kind == "bad-utf8" else b"\r") + raw[at:]


def event_name(data: st.DataObject, name: str | None) -> bytes | None:
    choice = data.draw(st.sampled_from(["same"] * 8 + ["none", "garbage", "bad-utf8"]))
    if choice == "same":
        return None if name is None else name.encode()
    if choice == "none":
        return None
    return b"\xff\xfe" if choice == "bad-utf8" else data.draw(st.text(max_size=6)).encode()


def broken_events(data: st.DataObject, events: list[tuple[str | None, bytes]]) -> bytes:
    events = list(events)
    for _ in range(data.draw(st.integers(1, 2), label="events broken")):
        i = data.draw(st.integers(0, len(events) - 1), label="event")
        name, payload = events[i]
        try:
            body = dumps(mutated(data, orjson.loads(payload)), data)
        except orjson.JSONDecodeError:  # [DONE]
            body = data.draw(st.sampled_from([b"[DONE]", b"[DONE] ", b"", b"{}", b"DONE"]))
        events[i] = (name, body)
    keep = (
        data.draw(st.integers(0, len(events)), label="events kept")
        if data.draw(st.booleans(), label="cut the list")
        else len(events)
    )
    out = []
    for name, payload in events[:keep]:
        raw_name = event_name(data, name)
        head = b"event: " + raw_name + b"\n" if raw_name is not None else b""
        out.append(head + b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n")))
    return b"\n".join(out) + b"\n" if out else b""


def frame(headers: list[tuple[bytes, bytes]], payload: bytes) -> bytes:
    """An AWS event-stream frame with string headers exactly as given."""
    raw = b"".join(
        bytes([len(k)]) + k + b"\x07" + struct.pack(">H", len(v)) + v for k, v in headers
    )
    prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw + payload
    return message + struct.pack(">I", zlib.crc32(message))


def broken_frames(data: st.DataObject, frames: list[tuple[dict[str, Any], bytes]]) -> bytes:
    frames = list(frames)
    for _ in range(data.draw(st.integers(1, 2), label="frames broken")):
        i = data.draw(st.integers(0, len(frames) - 1), label="frame")
        headers, payload = frames[i]
        headers = dict(headers)
        if data.draw(st.integers(0, 3), label="break a header") == 0:
            name = data.draw(st.sampled_from([":event-type", ":message-type"]))
            headers[name] = data.draw(
                st.sampled_from(["exception", "error", "event", "metadata", "\udcff"])
            )
        frames[i] = (headers, dumps(mutated(data, orjson.loads(payload)), data))
    keep = data.draw(st.integers(0, len(frames)), label="frames kept")
    out = b""
    for headers, payload in frames[:keep]:
        pairs = [(k.encode(), v.encode("utf-8", "surrogateescape")) for k, v in headers.items()]
        out += frame(pairs, payload)
    return out


def hostile_answer(data: st.DataObject, template: Template) -> Fault:
    if template.whole is not None:
        body = dumps(mutated(data, template.whole), data)
    elif template.events is not None:
        body = broken_events(data, template.events)
    else:
        assert template.frames is not None
        body = broken_frames(data, template.frames)
    content_type = data.draw(
        st.sampled_from([template.content_type] * 15 + ["text/html"]), label="content type"
    )
    status = data.draw(st.sampled_from([200] * 15 + [400, 404, 500]), label="status")
    return Fault.raw(corrupted(data, body), status=status, headers={"content-type": content_type})


# -- what the client must get ----------------------------------------------------------------------


def ask(sc: RunningSidecar, body: dict[str, Any]) -> Raw:
    """One request, bounded in time (a sidecar that hangs fails the example, not the run)."""

    async def go() -> Raw:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            http.post(
                sc.url + "/v1/chat/completions",
                data=orjson.dumps(body),
                headers={"content-type": "application/json"},  # as SDKs send it (415 without)
            ) as resp,
        ):
            headers = {k.lower(): v for k, v in resp.headers.items()}
            return Raw(resp.status, headers, await resp.read())

    return sc.lt.run(go())


def assert_openai_error(resp: Raw) -> None:
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    error = orjson.loads(resp.body)["error"]
    assert isinstance(error["message"], str)
    assert error["type"] is None or isinstance(error["type"], str)


def assert_answer(api: str, body: bytes) -> None:
    parsed = orjson.loads(body)
    if api in TRANSLATED:
        ChatCompletion.model_validate(parsed)
        return
    assert isinstance(parsed["choices"], list)
    for choice in parsed["choices"]:
        assert isinstance(choice["message"], dict)


def assert_chunk(api: str, frame: bytes) -> None:
    data = b"\n".join(line[6:] for line in frame.split(b"\n") if line.startswith(b"data: "))
    assert all(line.startswith((b"data: ", b"event: ")) for line in frame.split(b"\n")), frame
    parsed = orjson.loads(data)
    if api in TRANSLATED:
        ChatCompletionChunk.model_validate(parsed)
        return
    assert isinstance(parsed, dict)
    choices = parsed.get("choices", [])
    assert isinstance(choices, list)
    for choice in choices:
        assert isinstance(choice, dict)
        assert isinstance(choice.get("delta", {}), dict)


def check(api: str, stream: bool, resp: Raw, sc: RunningSidecar) -> None:
    record = sc.audit_for(resp.headers["x-request-id"])
    assert record["status"] == resp.status, record
    usage = record["usage"]
    assert 0 <= usage["inputTokens"] <= MAX_TOKENS
    assert 0 <= usage["outputTokens"] <= MAX_TOKENS
    if resp.status != 200:
        assert resp.status in (400, 404, 502), resp.body
        assert record["outcome"] in ("rejected", "all_targets_failed"), record
        assert_openai_error(resp)
        return
    if not stream:
        assert record["outcome"] == "ok", record
        assert resp.headers["content-type"].startswith("application/json")
        assert_answer(api, resp.body)
        return
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.body.endswith(b"\n\n"), resp.body[-200:]
    frames = resp.body[:-2].split(b"\n\n")
    last = frames.pop()
    for chunk in frames:
        assert_chunk(api, chunk)
    if last == b"data: [DONE]":
        assert record["outcome"] == "ok", record
    else:
        error = orjson.loads(last.removeprefix(b"data: "))["error"]
        assert error["message"].startswith("provider stream failed: "), error
        assert record["outcome"] == "stream_error", record


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", APIS)
def test_hostile_answers_give_well_formed_responses_and_truthful_audits(
    api: str, stream: bool, world: World, errors: ErrorLogs
) -> None:
    sc, sim = world.sidecar, world.sims[api]
    templates = world.templates[(api, stream)]
    errors.records.clear()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def one(data: st.DataObject) -> None:
        template = data.draw(st.sampled_from(templates), label="template")
        sim.set_faults([hostile_answer(data, template)])
        resp = ask(sc, client_body(api, stream))
        check(api, stream, resp, sc)
        assert not errors.records, [r.getMessage() for r in errors.records]

    one()


def test_the_templates_are_real_answers(world: World) -> None:
    """The fuzz starts from answers the sidecar serves as they are (else it proves little)."""
    # The hostile answers above may have opened a target's circuit (100 failures in a row,
    # 30 s cooldown): that would refuse these requests for a reason that is not the template.
    world.sidecar.runtime.health.targets.clear()
    for (api, stream), templates in world.templates.items():
        for template in templates:
            world.sims[api].set_faults(
                [Fault.raw(serialised(template), headers={"content-type": template.content_type})]
            )
            resp = ask(world.sidecar, client_body(api, stream))
            assert resp.status == 200, (api, stream, resp.body)
            check(api, stream, resp, world.sidecar)
            assert world.sidecar.audit_for(resp.headers["x-request-id"])["outcome"] == "ok"


def serialised(template: Template) -> bytes:
    if template.whole is not None:
        return orjson.dumps(template.whole)
    if template.events is not None:
        return b"".join(
            (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + data + b"\n\n"
            for name, data in template.events
        )
    assert template.frames is not None
    return b"".join(
        frame([(k.encode(), str(v).encode()) for k, v in headers.items()], payload)
        for headers, payload in template.frames
    )
