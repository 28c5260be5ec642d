"""Anthropic Messages API: ``POST {endpoint}/v1/messages``.

Two ways in. A client of the Anthropic API (operation ``messages``, see
:mod:`aiguillage.sidecar.frontends.anthropic`) is served natively: its body passes through
with only ``model`` replaced, and stream events are relayed as they are (:class:`EventRelay`)
while the usage is read from them; its ``anthropic-beta`` and ``anthropic-version`` headers
go along (Claude Code needs its beta flags), no other client header does. Its token
counting (``POST /v1/messages/count_tokens``, operation ``messages.count_tokens``) passes
through the same way; it costs nothing, so it accounts no tokens. A client of OpenAI chat
completions is translated:

Request (from :class:`~.openai_chat.ChatRequest`): system and developer text becomes the
``system`` field; turns become ``messages`` whose content blocks are ``text``, ``image``
(base64 from data URLs, ``url`` sources for http(s) URLs, which Anthropic fetches),
``tool_use`` and ``tool_result`` (a user turn's tool results first, as Anthropic requires);
``max_tokens``/``max_completion_tokens`` become ``max_tokens``, which Anthropic requires:
:data:`DEFAULT_MAX_TOKENS` when the client gives none; ``stop`` → ``stop_sequences``;
function tools become ``tools`` with their JSON Schema as ``input_schema``; ``tool_choice``
auto/required/function/none becomes auto/any/tool/none and ``parallel_tool_calls: false``
becomes ``disable_parallel_tool_use``; a ``json_schema`` response format becomes
``output_config.format`` (Anthropic's structured outputs); ``json_object`` mode, which
Anthropic lacks, is emulated by :mod:`.json_mode` (an instruction, a ``{`` prefill, and a
check of the answer). Refused with a 400: ``n`` > 1, audio input, images other than
png/jpeg/gif/webp. Dropped as harmless sampling hints: ``seed``, ``presence_penalty``,
``frequency_penalty`` (as Anthropic's own OpenAI compatibility layer does), and
``temperature`` and ``top_p``: the Messages API of the anthropic SDK 2.x no longer has
them and recent Claude models refuse ``temperature`` with a 400, which would turn a hint
into a failed request.

Answer: ``text`` blocks are joined, ``tool_use`` blocks become ``tool_calls``, thinking
blocks are left out; ``stop_reason`` maps to ``finish_reason`` (:data:`STOP_REASONS`).
Usage: Anthropic counts prompt tokens read from or written to its cache apart from
``input_tokens``; the sidecar counts them all as prompt tokens (what OpenAI's
``prompt_tokens`` means) and reports the cache reads as ``cached_tokens``. Streams are
named SSE events; ``message_delta`` carries the **cumulative** usage (it replaces, never
adds), ``message_stop`` is the proper end, ``ping`` is ignored and an ``error`` event after
the 200 raises UpstreamProtocol (failover before the client's first byte, an error event
after). Errors ``{"type": "error", "error": {"type", "message"}}`` become OpenAI errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from aiguillage.sidecar.adapters import json_mode
from aiguillage.sidecar.adapters.base import (
    Adapter,
    Call,
    Operation,
    StreamTranslator,
    UpstreamRequest,
    Usage,
    token_count,
    usage_object,
)
from aiguillage.sidecar.adapters.json_mode import JsonMode, JsonTextStream
from aiguillage.sidecar.adapters.openai_chat import (
    DONE_EVENT,
    ChatRequest,
    Choice,
    ChunkWriter,
    Media,
    RemoteImage,
    Text,
    ToolCall,
    ToolResult,
    Turn,
    UnsupportedRequest,
    completion,
    is_openai_error,
    load_object,
    new_id,
    openai_error,
    parse_chat,
    tool_call_json,
)
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer, UpstreamProtocol

VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients often leave it out. 4096 is the largest
# value every Claude model accepts (older ones cap their output there).
DEFAULT_MAX_TOKENS = 4096
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Everything not listed (end_turn, stop_sequence, pause_turn...) reads as "stop".
STOP_REASONS = {
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_USAGE_KEYS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def messages_url(endpoint: str) -> str:
    """The Messages URL of an endpoint given as Anthropic's SDKs take it (no ``/v1``).

    An endpoint ending in ``/v1`` (as OpenAI-style base URLs do) is accepted too.
    """
    base = endpoint.rstrip("/")
    return base.removesuffix("/v1") + "/v1/messages"


# -- Anthropic's own shapes, also written by the Anthropic frontend ------------------------


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_json(status: int, message: str, **extra: Any) -> bytes:
    """An Anthropic error body: ``{"type": "error", "error": {"type", "message", ...}}``."""
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type(status), "message": message, **extra}}
    )


def sse_event(name: str, payload: Any) -> bytes:
    """One named SSE event, as Anthropic streams them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def is_anthropic_error(parsed: Any) -> bool:
    return (
        isinstance(parsed, dict)
        and parsed.get("type") == "error"
        and isinstance(parsed.get("error"), dict)
    )


def error_message(body: bytes, status: int) -> tuple[str, str | None]:
    """(message, type) of an error body in Anthropic's or OpenAI's shape, or its text."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        return error["message"], kind if isinstance(kind, str) else None
    text = body.decode(errors="replace").strip()[:500]
    return text or f"provider answered HTTP {status}", None


class TokenCounts:
    """Anthropic's usage fields as last reported (``message_delta`` totals replace them)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = dict.fromkeys(_USAGE_KEYS, 0)

    def update(self, usage: Any) -> None:
        """Take the counts ``usage`` reports (a count left out or null keeps its value)."""
        usage = usage_object(usage, "usage")
        if usage is None:
            return
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if value is not None:
                self.counts[key] = token_count(value, key)

    @property
    def usage(self) -> Usage:
        """All prompt tokens, cached or not, as input; what OpenAI calls prompt tokens."""
        c = self.counts
        prompt = c["input_tokens"] + c["cache_creation_input_tokens"]
        return Usage(prompt + c["cache_read_input_tokens"], c["output_tokens"])

    @property
    def cached(self) -> int:
        return self.counts["cache_read_input_tokens"]


def usage_of(usage: Any) -> tuple[Usage, int]:
    """(usage, prompt tokens read from the cache) of an Anthropic usage object."""
    counts = TokenCounts()
    counts.update(usage)
    return counts.usage, counts.cached


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _stream_error(payload: dict[str, Any]) -> UpstreamProtocol:
    error = payload.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return UpstreamProtocol(f"provider sent {kind or 'an error'} in the stream")


# -- request ---------------------------------------------------------------------------------


def request_body(req: ChatRequest, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """The Messages request body (without ``model``) for a parsed OpenAI chat request."""
    if req.n > 1:
        raise UnsupportedRequest('"n" > 1 is not supported by providers of api anthropic')
    out: dict[str, Any] = {
        "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": [_message(turn) for turn in req.turns],
    }
    system = req.system
    mode = json_mode.json_object_mode(body)
    if mode is not None:
        system = [*system, json_mode.INSTRUCTION]
        if mode.prefill:
            prefill = {"type": "text", "text": json_mode.PREFILL}
            out["messages"].append({"role": "assistant", "content": [prefill]})
    if len(system) == 1:
        out["system"] = system[0]
    elif system:
        out["system"] = [{"type": "text", "text": s} for s in system]
    if req.stop:
        out["stop_sequences"] = req.stop
    if req.tools:
        out["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "input_schema": tool.parameters or {"type": "object", "properties": {}},
            }
            for tool in req.tools
        ]
        choice = _tool_choice(req)
        if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
        if choice != {"type": "auto"}:
            out["tool_choice"] = choice
    if req.response_format.kind == "json_schema":
        out["output_config"] = {
            "format": {"type": "json_schema", "schema": req.response_format.schema}
        }
    if stream:
        out["stream"] = True
    return out


def _tool_choice(req: ChatRequest) -> dict[str, Any]:
    choice = req.tool_choice
    if choice is None or choice.mode == "auto":
        return {"type": "auto"}
    if choice.mode == "required":
        return {"type": "any"}
    if choice.mode == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice.name}


def _message(turn: Turn) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for part in turn.parts:
        if isinstance(part, Text):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, Media):
            if part.kind != "image" or part.mime not in IMAGE_TYPES:
                raise UnsupportedRequest(
                    f"{part.mime} input is not supported by providers of api anthropic "
                    "(images: png, jpeg, gif, webp)"
                )
            source = {"type": "base64", "media_type": part.mime, "data": part.data}
            blocks.append({"type": "image", "source": source})
        elif isinstance(part, RemoteImage):
            blocks.append({"type": "image", "source": {"type": "url", "url": part.url}})
        elif isinstance(part, ToolCall):
            blocks.append(
                {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
            )
        elif isinstance(part, ToolResult):
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
            if part.content:
                result["content"] = part.content
            blocks.append(result)
    if turn.role == "user":
        # Anthropic wants a user turn's tool results before anything else in it.
        blocks.sort(key=lambda b: b["type"] != "tool_result")
    return {"role": turn.role, "content": blocks}


# -- answer ----------------------------------------------------------------------------------


def read_message(raw: bytes, model: str, mode: JsonMode | None = None) -> tuple[bytes, Usage]:
    """An OpenAI ``chat.completion`` body, and the usage, from an Anthropic message.

    ``mode``: the request was in emulated JSON mode (see :mod:`.json_mode`).
    """
    body = load_object(raw, "Messages answer")
    content = body.get("content")
    if body.get("type") == "error" or not isinstance(content, list):
        raise MalformedAnswer("provider answered 200 without a message")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and isinstance(block.get("name"), str):
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                tool_call_json(len(calls), str(block.get("id", "")), block["name"], arguments)
            )
    usage, cached = usage_of(body.get("usage"))
    name = body.get("model")
    text = "".join(texts) if texts else None
    finish = finish_reason(body.get("stop_reason"))
    if mode is not None:
        text = json_mode.answer_text(mode, text, bool(calls))
        json_mode.check_json_object(text, finish, bool(calls))
    choice = Choice(0, text, calls, finish)
    return (
        completion(new_id(), name if isinstance(name, str) else model, [choice], usage, 0, cached),
        usage,
    )


class ChunkStream(StreamTranslator):
    """Anthropic stream events -> OpenAI chunks.

    Nothing is written for ``message_start``: the role rides on the first content delta,
    so the client's first byte is real content. ``message_delta`` gives the finish reason,
    ``message_stop`` ends the answer (usage chunk if asked, then ``[DONE]``).
    """

    def __init__(self, model: str, client_wants_usage: bool, mode: JsonMode | None = None) -> None:
        self.usage = Usage()
        self.done = False
        self._wants_usage = client_wants_usage
        self._writer = ChunkWriter(model)
        self._tokens = TokenCounts()
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._json = JsonTextStream(mode) if mode is not None else None

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if self.done:
            return ()  # nothing may follow the [DONE] the client was already sent
        payload = load_object(data, f"{event or 'stream'} event")
        kind = event or payload.get("type")
        if kind == "error":
            raise _stream_error(payload)
        handler = _CHUNK_EVENTS.get(kind) if isinstance(kind, str) else None
        return handler(self, payload) if handler else ()  # ping, content_block_stop, new ones

    def _message_start(self, payload: dict[str, Any]) -> list[bytes]:
        message = payload.get("message")
        if isinstance(message, dict):
            self._tokens.update(message.get("usage"))
            self.usage = self._tokens.usage
            if isinstance(message.get("model"), str):
                self._writer.model = message["model"]
        return []

    def _block_start(self, payload: dict[str, Any]) -> list[bytes]:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and block.get("text"):
            return [self._writer.delta(content=self._text(str(block["text"])))]
        if block.get("type") != "tool_use" or not isinstance(block.get("name"), str):
            return []  # thinking and server tool blocks are not part of an OpenAI answer
        index = len(self._tools)
        self._tools[_index(payload)] = index
        call = tool_call_json(index, str(block.get("id", "")), block["name"], "")
        return [self._writer.delta(tool_calls=[call])]

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta" and isinstance(delta, dict) and delta.get("text"):
            return [self._writer.delta(content=self._text(str(delta["text"])))]
        block = _index(payload)
        if kind == "input_json_delta" and isinstance(delta, dict) and block in self._tools:
            partial = delta.get("partial_json")
            if isinstance(partial, str) and partial:
                call = {"index": self._tools[block], "function": {"arguments": partial}}
                return [self._writer.delta(tool_calls=[call])]
        return []  # thinking, signatures and citations are not part of an OpenAI answer

    def _message_delta(self, payload: dict[str, Any]) -> list[bytes]:
        self._tokens.update(payload.get("usage"))  # running totals: replace, never add
        self.usage = self._tokens.usage
        delta = payload.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not reason:
            return []
        finish = finish_reason(reason)
        if self._json is not None:
            self._json.finish(finish, bool(self._tools))
        return [self._writer.delta(finish_reason=finish)]

    def _text(self, text: str) -> str:
        return text if self._json is None else self._json.text(text)

    def _message_stop(self, payload: dict[str, Any]) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = []
        if self._wants_usage:
            out.append(self._writer.usage(self.usage, cached_tokens=self._tokens.cached))
        out.append(DONE_EVENT)
        return out


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("index")
    return index if isinstance(index, int) else 0


_CHUNK_EVENTS = {
    "message_start": ChunkStream._message_start,
    "content_block_start": ChunkStream._block_start,
    "content_block_delta": ChunkStream._block_delta,
    "message_delta": ChunkStream._message_delta,
    "message_stop": ChunkStream._message_stop,
}
# Events after which the native relay lets the held-back events go: real content, or an
# answer that ends without any.
_CONTENT_EVENTS = frozenset({"content_block_delta", "message_delta", "message_stop"})


class EventRelay(StreamTranslator):
    """Anthropic events relayed as they are, for clients of the Anthropic API.

    Every event is parsed (a garbled one ends the stream with an error event instead of
    reaching the client's SDK), the usage is read from ``message_start`` and the running
    totals of ``message_delta``, and ``message_stop`` is the proper end. The events before
    the first content delta are held back, so that an error arriving before any content
    can still fail over to another target.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False
        self._tokens = TokenCounts()
        self._held: list[bytes] | None = []

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if self.done:
            return ()  # nothing may follow the message_stop the client was already sent
        payload = load_object(data, f"{event or 'stream'} event")
        kind = event or payload.get("type")
        if kind == "error":
            raise _stream_error(payload)
        if not isinstance(kind, str):
            return ()  # Anthropic names every event; SDKs skip unnamed ones
        if kind == "message_start":
            message = payload.get("message")
            self._tokens.update(message.get("usage") if isinstance(message, dict) else None)
            self.usage = self._tokens.usage
        elif kind == "message_delta":
            self._tokens.update(payload.get("usage"))
            self.usage = self._tokens.usage
        elif kind == "message_stop":
            self.done = True
        if b"\n" in data:  # keep the SSE framing of a multi-line data field
            data = data.replace(b"\n", b"\ndata: ")
        frame = b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
        if self._held is None:
            return (frame,)
        self._held.append(frame)
        if kind not in _CONTENT_EVENTS:
            return ()
        held, self._held = self._held, None
        return held


# -- errors ----------------------------------------------------------------------------------


def error_to_openai(status: int, body: bytes) -> bytes:
    """Anthropic's error body as an OpenAI error body (its error type as the code)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    # Anthropic's shape also has an "error" object with a "type": check for it first.
    if is_openai_error(parsed) and not is_anthropic_error(parsed):
        return body
    message, kind = error_message(body, status)
    return openai_error(status, message, kind)


def as_anthropic_error(status: int, body: bytes) -> bytes:
    """``body`` when it already is an Anthropic error, else one carrying its message."""
    try:
        if is_anthropic_error(orjson.loads(body)):
            return body
    except orjson.JSONDecodeError:
        pass
    return error_json(status, error_message(body, status)[0])


# -- the adapter -----------------------------------------------------------------------------


# Operations whose body is already Anthropic's: passed through, never translated.
_NATIVE = frozenset({Operation.MESSAGES, Operation.COUNT_TOKENS})


class AnthropicAdapter(Adapter):
    api = "anthropic"
    operations = frozenset({Operation.CHAT, Operation.MESSAGES, Operation.COUNT_TOKENS})

    def __init__(self, provider: Provider, credential: str | None) -> None:
        super().__init__(provider, credential)
        self._url = messages_url(provider.endpoint)
        self._count_url = self._url + "/count_tokens"
        self._headers = {"content-type": "application/json", "anthropic-version": VERSION}
        if credential:
            self._headers["x-api-key"] = credential

    def build(self, call: Call, model: str) -> UpstreamRequest:
        if call.operation in _NATIVE:
            body = call.body
            body["model"] = model
            url = self._count_url if call.operation is Operation.COUNT_TOKENS else self._url
            # The client's own API: its beta flags and version mean the same here.
            headers = {**self._headers, **call.client_headers} if call.client_headers else None
            return UpstreamRequest(url, headers or self._headers, orjson.dumps(body))
        req = parse_chat(call.body, self.api, remote_images=True)
        body = request_body(req, call.body, call.stream)
        body["model"] = model
        return UpstreamRequest(self._url, self._headers, orjson.dumps(body))

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        if call.operation not in _NATIVE:
            return read_message(raw, model, json_mode.json_object_mode(call.body))
        body = load_object(raw, "Messages answer")
        if body.get("type") == "error":
            raise MalformedAnswer("provider answered 200 with an error body")
        if call.operation is Operation.COUNT_TOKENS:
            if not isinstance(body.get("input_tokens"), int):
                raise MalformedAnswer("provider answered token counting without input_tokens")
            return raw, Usage()  # counting is free: no tokens to account
        return raw, usage_of(body.get("usage"))[0]

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        if call.operation in _NATIVE:
            return EventRelay()
        mode = json_mode.json_object_mode(call.body)
        return ChunkStream(model, call.client_wants_usage, mode)

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        if call.operation in _NATIVE:
            return as_anthropic_error(status, body)
        return error_to_openai(status, body)
