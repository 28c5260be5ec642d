"""Google's ``generateContent`` wire format, shared by :mod:`.gemini` and :mod:`.vertex_ai`.

Both APIs take the same request and answer the same ``GenerateContentResponse``; they differ
in URLs, auth and embeddings, which each subclass of :class:`GoogleGenAIAdapter` supplies.

Request (from :class:`~.openai_chat.ChatRequest`): turns become ``contents`` with roles
``user``/``model``; system text becomes ``systemInstruction``; images and audio become
``inlineData``; assistant tool calls become ``functionCall`` parts (with the thought
signature clients echo back in ``extra_content.google``, which Gemini 3 requires) and tool
results ``functionResponse`` parts; function tools become ``functionDeclarations`` with
their JSON Schema as ``parametersJsonSchema``; sampling and JSON mode go in
``generationConfig``.

Answer: ``candidates`` become choices (text parts joined, ``thought`` parts left out,
``functionCall`` parts become ``tool_calls``), ``finishReason`` maps to OpenAI's, usage
comes from ``usageMetadata`` (thinking tokens count as output, as they are billed). A
stream's ``usageMetadata`` is a running total, so the last one seen is the usage. Streams
use ``alt=sse``; they have no ``[DONE]`` of their own, so the decoder registered here as
``"sse-with-end"`` reports the clean end of the SSE stream and the translator writes the
client's usage chunk and ``[DONE]`` then.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import orjson

from aiguillage.sidecar import upstream
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
from aiguillage.sidecar.adapters.openai_chat import (
    DONE_EVENT,
    END_OF_STREAM,
    ChatRequest,
    Choice,
    ChunkWriter,
    Media,
    Text,
    ToolCall,
    ToolResult,
    completion,
    is_openai_error,
    load_object,
    new_call_id,
    new_id,
    openai_error,
    parse_chat,
    tool_call_json,
)
from aiguillage.sidecar.config import SizeLimits
from aiguillage.sidecar.errors import MalformedAnswer, UpstreamProtocol

SSE_WITH_END = "sse-with-end"

# Everything not listed (STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL...) reads as "stop".
FINISH_REASONS = {
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


async def sse_then_end(resp: upstream.Response, limits: SizeLimits) -> upstream.Events:
    """SSE events, then ``(END_OF_STREAM, b"")`` once the provider closed the stream cleanly."""
    async with contextlib.aclosing(upstream.sse_events(resp, limits)) as events:
        async for batch in events:
            yield batch
    yield [(END_OF_STREAM, b"")]


upstream.STREAM_FORMATS[SSE_WITH_END] = upstream.StreamFormat(
    sse_then_end, upstream.STREAM_FORMATS["sse"].content_types
)


# -- request ---------------------------------------------------------------------------------


def request_body(req: ChatRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest`` for a parsed OpenAI chat request."""
    body: dict[str, Any] = {"contents": [_content(t.role, t.parts) for t in req.turns]}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": s} for s in req.system]}
    if req.tools:
        declarations = []
        for tool in req.tools:
            decl: dict[str, Any] = {"name": tool.name}
            if tool.description:
                decl["description"] = tool.description
            if tool.parameters:
                decl["parametersJsonSchema"] = tool.parameters
            declarations.append(decl)
        body["tools"] = [{"functionDeclarations": declarations}]
    choice = req.tool_choice
    if choice is not None and choice.mode != "auto":
        calling: dict[str, Any] = {"mode": "NONE" if choice.mode == "none" else "ANY"}
        if choice.name:
            calling["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config = _generation_config(req)
    if config:
        body["generationConfig"] = config
    return body


def _content(role: str, parts: Iterable[Any]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"text": part.text})
        elif isinstance(part, Media):
            out.append({"inlineData": {"mimeType": part.mime, "data": part.data}})
        elif isinstance(part, ToolCall):
            call: dict[str, Any] = {"functionCall": {"name": part.name, "args": part.arguments}}
            if part.signature:
                call["thoughtSignature"] = part.signature
            out.append(call)
        elif isinstance(part, ToolResult):
            out.append({"functionResponse": {"name": part.name, "response": _result(part)}})
    return {"role": "model" if role == "assistant" else "user", "parts": out}


def _result(part: ToolResult) -> dict[str, Any]:
    # functionResponse.response is an object; Google reads an "output" key as the result.
    try:
        parsed = orjson.loads(part.content)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"output": part.content}


def _generation_config(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("seed", req.seed),
        ("presencePenalty", req.presence_penalty),
        ("frequencyPenalty", req.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    if req.stop:
        config["stopSequences"] = req.stop
    if req.n > 1:
        config["candidateCount"] = req.n
    fmt = req.response_format
    if fmt.kind != "text":
        config["responseMimeType"] = "application/json"
    if fmt.kind == "json_schema":
        config["responseJsonSchema"] = fmt.schema
    return config


# -- answer ----------------------------------------------------------------------------------


def usage_of(body: dict[str, Any]) -> tuple[Usage, int]:
    """(usage, thinking tokens) from ``usageMetadata``; thinking tokens are output tokens."""
    meta = usage_object(body.get("usageMetadata"), "usageMetadata")
    if meta is None:
        return Usage(), 0
    thoughts = token_count(meta.get("thoughtsTokenCount"), "thoughtsTokenCount")
    prompt = token_count(meta.get("promptTokenCount"), "promptTokenCount") + token_count(
        meta.get("toolUsePromptTokenCount"), "toolUsePromptTokenCount"
    )
    output = token_count(meta.get("candidatesTokenCount"), "candidatesTokenCount") + thoughts
    return Usage(prompt, output), thoughts


def _parts(candidate: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """(text, function calls) of a candidate; thought summaries are not part of the answer."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            calls.append({**call, "thoughtSignature": part.get("thoughtSignature")})
    return ("".join(texts) if texts else None), calls


def _tool_calls(calls: list[dict[str, Any]], first_index: int) -> list[dict[str, Any]]:
    return [
        tool_call_json(
            first_index + i,
            call.get("id") or new_call_id(),
            call["name"],
            orjson.dumps(call.get("args") or {}).decode(),
            call.get("thoughtSignature"),
        )
        for i, call in enumerate(calls)
    ]


def _finish(reason: Any, had_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if had_tool_calls and mapped == "stop" else mapped


def _candidates(body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    candidates = body.get("candidates")
    if not isinstance(candidates, list):
        return []
    # proto3 JSON leaves out a zero index: fall back to the position.
    return [
        (c.get("index", i) if isinstance(c.get("index", i), int) else i, c)
        for i, c in enumerate(candidates)
        if isinstance(c, dict)
    ]


def _blocked(body: dict[str, Any]) -> bool:
    feedback = body.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def read_generate_response(raw: bytes, model: str) -> tuple[bytes, Usage]:
    body = load_object(raw, "generateContent answer")
    if isinstance(body.get("error"), dict):
        raise MalformedAnswer("provider answered 200 with an error body")
    usage, thoughts = usage_of(body)
    choices = []
    for index, candidate in _candidates(body):
        text, calls = _parts(candidate)
        choices.append(
            Choice(
                index,
                text,
                _tool_calls(calls, 0),
                _finish(candidate.get("finishReason"), bool(calls)),
            )
        )
    if not choices:
        # No candidate at all: the prompt itself was blocked (promptFeedback.blockReason).
        reason = "content_filter" if _blocked(body) else "stop"
        choices.append(Choice(0, None, [], reason))
    version = body.get("modelVersion")
    name = version if isinstance(version, str) else model
    return completion(new_id(), name, choices, usage, thoughts), usage


class GenerateContentStream(StreamTranslator):
    """``streamGenerateContent?alt=sse`` events -> OpenAI chunks (see the module docstring)."""

    def __init__(self, model: str, client_wants_usage: bool) -> None:
        self.usage = Usage()
        self.done = False
        self._thoughts = 0
        self._wants_usage = client_wants_usage
        self._writer = ChunkWriter(model)
        self._named = False
        self._tools: dict[int, int] = {}  # candidate index -> tool calls so far
        self._finished: set[int] = set()
        self._ended = False

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if event == END_OF_STREAM:
            return self._end()
        if self._ended:
            return ()
        chunk = load_object(data, "stream chunk")
        error = chunk.get("error")
        if isinstance(error, dict):
            status = error.get("status") or error.get("code") or "error"
            raise UpstreamProtocol(f"provider sent an error in the stream ({status})")
        if chunk.get("usageMetadata") is not None:
            self.usage, self._thoughts = usage_of(chunk)
        writer = self._writer
        if not self._named and isinstance(chunk.get("modelVersion"), str):
            writer.model = chunk["modelVersion"]
        self._named = True
        out: list[bytes] = []
        candidates = _candidates(chunk)
        if not candidates and _blocked(chunk):
            self._finished.add(0)
            out.append(writer.delta(0, finish_reason="content_filter"))
        for index, candidate in candidates:
            text, calls = _parts(candidate)
            done_calls = self._tools.get(index, 0)
            if text or calls:
                out.append(
                    writer.delta(
                        index,
                        content=text if text else None,
                        tool_calls=_tool_calls(calls, done_calls),
                    )
                )
                self._tools[index] = done_calls + len(calls)
            reason = candidate.get("finishReason")
            if reason and index not in self._finished:
                self._finished.add(index)
                finish = _finish(reason, self._tools.get(index, 0) > 0)
                out.append(writer.delta(index, finish_reason=finish))
        if self._finished:
            self.done = True
        return out

    def _end(self) -> list[bytes]:
        if self._ended:
            return []
        # A stream that ends cleanly ends the answer, finish reason or not.
        self._ended = self.done = True
        out = []
        if not self._finished:
            out.append(self._writer.delta(0, finish_reason="stop"))
        if self._wants_usage:
            out.append(self._writer.usage(self.usage, self._thoughts))
        out.append(DONE_EVENT)
        return out


def error_to_openai(status: int, body: bytes) -> bytes:
    """Google's ``{"error": {"code", "message", "status"}}`` as an OpenAI error body."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode(errors="replace").strip()[:500]
        return openai_error(status, text or f"provider answered HTTP {status}", None)
    if is_openai_error(parsed):
        return body
    if isinstance(parsed, list) and parsed:  # the JSON-array flavour of stream errors
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return openai_error(status, f"provider answered HTTP {status}", None)
    message = error.get("message")
    code = error.get("status")
    return openai_error(
        status,
        message if isinstance(message, str) else f"provider answered HTTP {status}",
        code if isinstance(code, str) else None,
    )


# -- the adapter -----------------------------------------------------------------------------


class GoogleGenAIAdapter(Adapter):
    """Chat through ``generateContent``; subclasses give URLs, auth and embeddings."""

    operations = frozenset({Operation.CHAT, Operation.EMBEDDINGS})
    stream_format = SSE_WITH_END

    @abstractmethod
    def model_url(self, model: str) -> str:
        """URL of ``model`` without the ``:method`` suffix."""

    @abstractmethod
    def headers(self) -> dict[str, str]: ...

    @abstractmethod
    def embeddings_request(self, call: Call, model: str) -> UpstreamRequest: ...

    @abstractmethod
    def embeddings_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]: ...

    def build(self, call: Call, model: str) -> UpstreamRequest:
        if call.operation is Operation.EMBEDDINGS:
            return self.embeddings_request(call, model)
        body = request_body(parse_chat(call.body, self.api))
        method = ":streamGenerateContent?alt=sse" if call.stream else ":generateContent"
        return UpstreamRequest(self.model_url(model) + method, self.headers(), orjson.dumps(body))

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        if call.operation is Operation.EMBEDDINGS:
            return self.embeddings_response(call, raw, model)
        return read_generate_response(raw, model)

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        return GenerateContentStream(model, call.client_wants_usage)

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        return error_to_openai(status, body)
