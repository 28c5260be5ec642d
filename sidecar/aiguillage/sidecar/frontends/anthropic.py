"""The Anthropic Messages API for clients: ``POST /v1/messages`` on the sidecar.

The official ``anthropic`` SDK works against the sidecar (``base_url`` without ``/v1``).
Routes are chosen by the body's ``model``, like OpenAI requests. A target whose adapter
speaks Messages natively (:mod:`aiguillage.sidecar.adapters.anthropic`) gets the body as
it is; any other target is served through chat completions, translated here both ways:

Request → chat completions: ``system`` (a string or text blocks, joined by blank lines)
becomes a system message; ``text`` and ``image`` blocks (base64 → data URL, ``url`` source
→ the URL) become user content parts; ``tool_use`` blocks become the assistant's
``tool_calls`` and ``tool_result`` blocks ``tool`` messages (text only; ``is_error`` has no
OpenAI equivalent and is not carried); ``max_tokens``, ``temperature``, ``top_p``,
``stop_sequences`` → ``stop``; custom tools become function tools; ``tool_choice``
auto/any/tool/none becomes auto/required/function/none and ``disable_parallel_tool_use``
becomes ``parallel_tool_calls: false``; ``output_config.format`` (or the beta
``output_format``) becomes a ``json_schema`` response format. Thinking blocks in the
history are dropped (only Claude can read them). Refused with a 400 (an Anthropic error),
because the answer would lack what was asked for: ``thinking`` enabled, server tools
(web search, code execution...), ``document``/``search_result``/other blocks, images in
tool results, ``mcp_servers``, ``container``. Dropped as harmless: ``top_k``,
``metadata``, ``service_tier``, ``inference_geo``, ``output_config.effort``,
``cache_control`` marks.

Answer → message: content becomes a ``text`` block and ``tool_use`` blocks; the finish
reason maps to ``stop_reason`` (stop → end_turn, length → max_tokens, tool_calls →
tool_use, content_filter → refusal); OpenAI's ``prompt_tokens`` include cached tokens,
Anthropic's ``input_tokens`` do not, so cached tokens move to ``cache_read_input_tokens``.
Streams → named events (:class:`MessageEvents`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar
from uuid import uuid4

import orjson

from aiguillage.sidecar.adapters.anthropic import as_anthropic_error, error_json, sse_event
from aiguillage.sidecar.adapters.base import Call, Operation, StreamTranslator
from aiguillage.sidecar.adapters.openai_chat import UnsupportedRequest, load_object
from aiguillage.sidecar.errors import UpstreamProtocol
from aiguillage.sidecar.frontends.base import (
    TranslatingFrontend,
    chat_answer,
    first_choice,
    sse_payloads,
)
from aiguillage.sidecar.httpserver import Response

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Request fields whose effect a chat completion cannot give: refused, not dropped.
REFUSED_FIELDS = ("mcp_servers", "container", "context_management")
_ELSEWHERE = "is not supported when the route's target does not speak the Anthropic API"
# The sidecar's own error code (OpenAI bodies carry it as error.code).
ERROR_CODE_HEADER = "x-aiguillage-error-code"


class AnthropicFrontend(TranslatingFrontend):
    operation: ClassVar[Operation] = Operation.MESSAGES

    def error(
        self,
        status: int,
        message: str,
        type_: str,
        code: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        # Exactly Anthropic's shape, typed by status (the SDKs pick exception classes by
        # status), so that strict parsers accept it: the sidecar's own code travels in a
        # header, and details such as the attempts are in the message.
        return Response(
            status,
            error_json(status, message),
            content_type="application/json",
            headers={**(headers or {}), ERROR_CODE_HEADER: code},
        )

    def stream_error(self, message: str, code: str, stream: StreamTranslator | None) -> bytes:
        kind = "timeout_error" if code == "timeout" else "api_error"
        error = {"type": kind, "message": f"{message} ({code})"}
        return sse_event("error", {"type": "error", "error": error})

    def throttled_status(self, overloaded: bool) -> int:
        return 529 if overloaded else 429

    def to_canonical(self, call: Call) -> Call:
        return Call(Operation.CHAT, chat_body(call.body), call.stream, client_wants_usage=True)

    def answer(self, call: Call, body: bytes) -> bytes:
        return message_body(body)

    def stream(self, call: Call, canonical: StreamTranslator) -> StreamTranslator:
        return MessageEvents(canonical, str(call.body.get("model", "")))

    def error_body(self, status: int, body: bytes) -> bytes:
        return as_anthropic_error(status, body)


ANTHROPIC = AnthropicFrontend()


# -- request ---------------------------------------------------------------------------------


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat.completions body asking for what an Anthropic Messages body asks for."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest('"messages" must be a non-empty list')
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        raise UnsupportedRequest(f'"thinking" {_ELSEWHERE}')
    for name in REFUSED_FIELDS:
        if body.get(name) not in (None, [], {}):
            raise UnsupportedRequest(f'"{name}" {_ELSEWHERE}')
    out_messages: list[dict[str, Any]] = []
    system = _text(body.get("system"), "system")
    if system:
        out_messages.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        out_messages.extend(_messages(message, f"messages[{i}]"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": out_messages}
    for name in ("max_tokens", "temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop_sequences")
    if isinstance(stop, list) and stop:
        out["stop"] = stop
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        out.update(_tool_choice(body.get("tool_choice")))
    fmt = _output_format(body)
    if fmt is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt},
        }
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _text(content: Any, where: str) -> str:
    """Text of a string or of a list of text blocks (joined by blank lines)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise UnsupportedRequest(f"{where} must be a string or a list of text blocks")
    texts = []
    for k, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else None
            raise UnsupportedRequest(f'{where}[{k}]: blocks of type "{kind}" {_ELSEWHERE}')
        texts.append(str(block.get("text", "")))
    return "\n\n".join(texts)


def _messages(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, dict):
        raise UnsupportedRequest(f"{where} must be an object")
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise UnsupportedRequest(f'{where}.role must be "user" or "assistant"')
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise UnsupportedRequest(f"{where}.content must be a string or a list of blocks")
    return _assistant(content, where) if role == "assistant" else _user(content, where)


def _user(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    # Tool results answer the previous assistant turn, so their tool messages go first
    # (Anthropic requires them first in the turn anyway).
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for k, block in enumerate(blocks):
        at = f"{where}.content[{k}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block, dict):
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and isinstance(block, dict):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
        elif kind == "tool_result" and isinstance(block, dict):
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str):
                raise UnsupportedRequest(f"{at}.tool_use_id must be a string")
            text = _text(block.get("content"), f"{at}.content")
            results.append({"role": "tool", "tool_call_id": call_id, "content": text})
        else:
            raise UnsupportedRequest(f'{at}: blocks of type "{kind}" {_ELSEWHERE}')
    if not parts:
        return results
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return str(source["url"])
    raise UnsupportedRequest(f'{where}: image sources of type "{kind}" {_ELSEWHERE}')


def _assistant(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for k, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block, dict):
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use" and isinstance(block, dict):
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise UnsupportedRequest(f"{where}.content[{k}]: tool_use needs an id and a name")
            function = {
                "name": block["name"],
                "arguments": orjson.dumps(block.get("input") or {}).decode(),
            }
            calls.append({"id": block["id"], "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # Claude's own reasoning: other models cannot use it
        else:
            raise UnsupportedRequest(f'{where}.content[{k}]: blocks of type "{kind}" {_ELSEWHERE}')
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return [message]


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools or ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or kind not in (None, "custom"):
            raise UnsupportedRequest(f'tools[{i}]: tools of type "{kind}" {_ELSEWHERE}')
        if not isinstance(tool.get("name"), str):
            raise UnsupportedRequest(f"tools[{i}].name must be a string")
        function: dict[str, Any] = {"name": tool["name"]}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        if isinstance(tool.get("input_schema"), dict):
            function["parameters"] = tool["input_schema"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if choice is None or kind == "auto":
        out: dict[str, Any] = {}
    elif kind == "any":
        out = {"tool_choice": "required"}
    elif kind == "none":
        return {"tool_choice": "none"}
    elif kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        out = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    else:
        raise UnsupportedRequest('"tool_choice" must be of type auto, any, tool or none')
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    fmt = fmt if fmt is not None else body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise UnsupportedRequest('output format must be of type "json_schema"')
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise UnsupportedRequest('output format "json_schema" needs a "schema" object')
    return schema


# -- answer ----------------------------------------------------------------------------------


def new_message_id() -> str:
    return "msg_" + uuid4().hex


def stop_reason(finish_reason: Any) -> str:
    return (
        STOP_REASONS.get(finish_reason, "end_turn")
        if isinstance(finish_reason, str)
        else "end_turn"
    )


def _usage(prompt: int, cached: int, output: int) -> dict[str, int]:
    return {
        "input_tokens": max(prompt - cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output,
    }


def _openai_usage(usage: Any) -> tuple[int, int, int]:
    """(prompt, cached, completion) tokens of an OpenAI usage object."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (
        int(usage.get("prompt_tokens") or 0),
        int(cached or 0),
        int(usage.get("completion_tokens") or 0),
    )


def _tool_input(arguments: Any) -> dict[str, Any]:
    try:
        parsed = orjson.loads(arguments or "{}") if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamProtocol("provider sent tool call arguments that are not a JSON object")
    return parsed


def message_body(raw: bytes) -> bytes:
    """An Anthropic ``message`` from an OpenAI ``chat.completion`` body."""
    body, choice, message = chat_answer(raw)
    content: list[dict[str, Any]] = []
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(call, dict) and isinstance(function, dict):
            content.append(
                {
                    "type": "tool_use",
                    "id": str(call.get("id") or ""),
                    "name": str(function.get("name", "")),
                    "input": _tool_input(function.get("arguments")),
                }
            )
    reason = "refusal" if refusal and not text else stop_reason(choice.get("finish_reason"))
    return orjson.dumps(
        {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or "",
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": _usage(*_openai_usage(body.get("usage"))),
        }
    )


class MessageEvents(StreamTranslator):
    """OpenAI chunks (from the wrapped translator) -> Anthropic named events.

    Nothing is written before the first content: then ``message_start`` goes out with it,
    so the client's first byte is real content. Text and each tool call are content blocks,
    one open at a time (a tool call's arguments stream as ``input_json_delta``). The usage
    is known only at the end: ``message_delta`` carries it with the stop reason, then
    ``message_stop``.
    """

    def __init__(self, canonical: StreamTranslator, model: str) -> None:
        self.usage = canonical.usage
        self.done = False
        self._inner = canonical
        self._id = new_message_id()
        self._model = model
        self._started = False
        self._open: int | None = None  # index of the open content block
        self._open_kind = ""
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self._stop: str | None = None
        self._cached = 0

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        out: list[bytes] = []
        for chunk in self._inner.feed(event, data):
            for payload in sse_payloads(chunk):
                out.extend(self._chunk(payload))
        self.usage = self._inner.usage
        return out

    def _chunk(self, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            return self._finish()
        chunk = load_object(data, "stream chunk")
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._cached = _openai_usage(usage)[1]
        choice = first_choice(chunk)
        if choice is None:
            return []
        out: list[bytes] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.extend(self._text(delta[key]))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.extend(self._tool(call))
        if isinstance(choice.get("finish_reason"), str):
            self._stop = stop_reason(choice["finish_reason"])
        return out

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self._inner.usage.input_tokens, 0, self._inner.usage.output_tokens),
        }
        return [sse_event("message_start", {"type": "message_start", "message": message})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._start() + self._close()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        payload = {"type": "content_block_start", "index": self._open, "content_block": block}
        out.append(sse_event("content_block_start", payload))
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        payload = {"type": "content_block_delta", "index": self._open, "delta": delta}
        return sse_event("content_block_delta", payload)

    def _text(self, text: str) -> list[bytes]:
        is_open = self._open is not None and self._open_kind == "text"
        out = [] if is_open else self._open_block("text", {"type": "text", "text": ""})
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _tool(self, call: dict[str, Any]) -> list[bytes]:
        index = call["index"] if isinstance(call.get("index"), int) else 0
        function = call["function"] if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        if index not in self._tools:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            out = self._open_block("tool", block)
            self._tools[index] = self._blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            if self._tools[index] != self._open:
                raise UpstreamProtocol("provider interleaved the arguments of two tool calls")
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _finish(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        usage = self._inner.usage
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
            "usage": _usage(usage.input_tokens, self._cached, usage.output_tokens),
        }
        return [
            *self._start(),
            *self._close(),
            sse_event("message_delta", delta),
            sse_event("message_stop", {"type": "message_stop"}),
        ]
