"""The client's side of the translating adapters: OpenAI chat completions, read and written.

Adapters whose provider speaks OpenAI (:mod:`.openai`, :mod:`.azure_openai`) pass bodies
through. The others (:mod:`.google_genai` for Gemini and Vertex AI, :mod:`.bedrock`,
:mod:`.anthropic`) parse the client's request once into the neutral :class:`ChatRequest`
defined here, map it to their wire format, and build the client's answer with
:func:`completion` and :class:`ChunkWriter`. Only what the OpenAI shape itself fixes lives
here; what a provider can or cannot express is decided in its own module.

A request a provider cannot express raises :class:`UnsupportedRequest`: an
:class:`~aiguillage.sidecar.errors.UpstreamStatus` 400 whose body is already an OpenAI
error, so :func:`~aiguillage.sidecar.forward.forward` relays it to the client like a
provider's own refusal (audit outcome ``rejected``), without contacting the provider.
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import uuid4

import orjson

from aiguillage.sidecar.adapters.base import Usage
from aiguillage.sidecar.errors import MalformedAnswer, UpstreamStatus
from aiguillage.sidecar.responses import error_body

# Event name a stream decoder yields once the provider's stream ended cleanly (never a
# real provider event name), so translators can finish the client's stream after the
# provider's last event rather than guess which event is the last.
END_OF_STREAM = "aiguillage.end-of-stream"
DONE_EVENT = b"data: [DONE]\n\n"

# Fields that change what the client gets back and that no translating adapter expresses:
# dropping them silently would hand the client something it did not ask for.
REFUSED_FIELDS = (
    "audio",
    "functions",
    "function_call",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "web_search_options",
)


class UnsupportedRequest(UpstreamStatus):
    """The client asked for something the provider's wire format cannot express (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            400,
            error_body(message, "invalid_request_error", "unsupported_by_provider"),
            "application/json",
        )
        self.args = (message,)


def openai_error(status: int, message: str, code: str | None) -> bytes:
    """An OpenAI-shaped error body for a provider error relayed to the client."""
    if status == 401:
        kind = "authentication_error"
    elif status == 403:
        kind = "permission_denied_error"
    elif status == 429:
        kind = "rate_limit_error"
    elif 400 <= status < 500:
        kind = "invalid_request_error"
    else:
        kind = "api_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def is_openai_error(parsed: Any) -> bool:
    """Whether ``parsed`` is an OpenAI error body an SDK reads: an ``error`` object with a
    string ``message`` and a ``type``, a string or null (as Azure's content filter sends)."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and "type" in error
        and isinstance(error["type"], str | None)
    )


def as_openai_error(status: int, body: bytes, keys: tuple[str, ...] = ("message",)) -> bytes:
    """``body`` when it is an OpenAI error, else an OpenAI error carrying its message.

    The message is the first string among the top-level ``keys`` of a JSON body, else the
    body's text. OpenAI-compatible servers do not all nest their errors (vLLM and Mistral
    answer ``{"object": "error", "message", "type", "code"}``), Bedrock answers
    ``{"message"}`` or ``{"Message"}``, and a proxy in between may answer HTML; the client's
    SDK reads an OpenAI error either way.
    """
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if is_openai_error(parsed):
        return body
    found = (parsed.get(k) for k in keys) if isinstance(parsed, dict) else ()
    message = next((m for m in found if isinstance(m, str) and m), None)
    if message is None:
        message = body.decode(errors="replace").strip()[:500] or f"provider answered HTTP {status}"
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return openai_error(status, message, code if isinstance(code, str) else None)


def load_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or MalformedAnswer naming ``what`` was broken."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedAnswer(f"provider sent invalid JSON ({what})") from exc
    if not isinstance(parsed, dict):
        raise MalformedAnswer(f"provider sent JSON that is not an object ({what})")
    return parsed


# -- the request, parsed ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Media:
    """Inline image or audio bytes, base64-encoded as the client sent them."""

    kind: Literal["image", "audio"]
    mime: str
    data: str


@dataclass(frozen=True, slots=True)
class RemoteImage:
    """An image the provider fetches itself from an http(s) URL (only for providers that can)."""

    url: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    # Gemini's thought signature, carried by clients in ``extra_content.google``.
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str
    content: str


Part = Text | Media | RemoteImage | ToolCall | ToolResult


@dataclass(slots=True)
class Turn:
    role: Literal["user", "assistant"]
    parts: list[Part]


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What an OpenAI chat.completions request asks for, independent of any provider.

    Consecutive messages of one role are merged into one :class:`Turn` (tool results are
    user turns), because Gemini wants a function call's results in one turn and Bedrock
    requires turns to alternate.
    """

    system: list[str]
    turns: list[Turn]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat = ResponseFormat("text")

    @property
    def has_tool_history(self) -> bool:
        return any(isinstance(p, ToolCall | ToolResult) for t in self.turns for p in t.parts)


def parse_chat(body: dict[str, Any], api: str, *, remote_images: bool = False) -> ChatRequest:
    """Parse the client's chat.completions body; UnsupportedRequest names what is wrong.

    ``remote_images``: the provider fetches http(s) image URLs itself, so they become
    :class:`RemoteImage` parts instead of being refused.
    """
    for name in REFUSED_FIELDS:
        value = body.get(name)
        if value not in (None, False, [], {}):
            raise UnsupportedRequest(f'"{name}" is not supported by providers of api {api}')
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise UnsupportedRequest(f"only text output is supported by providers of api {api}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest('"messages" must be a non-empty list')
    system, turns = _read_messages(messages, remote_images)
    stop = body.get("stop")
    return ChatRequest(
        system=system,
        turns=turns,
        max_tokens=_int(body, "max_completion_tokens", None) or _int(body, "max_tokens", None),
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=[stop] if isinstance(stop, str) else [s for s in stop or () if isinstance(s, str)],
        n=_int(body, "n", 1) or 1,
        seed=_int(body, "seed", None),
        presence_penalty=_number(body, "presence_penalty"),
        frequency_penalty=_number(body, "frequency_penalty"),
        tools=_read_tools(body.get("tools")),
        tool_choice=_read_tool_choice(body.get("tool_choice")),
        response_format=_read_response_format(body.get("response_format")),
    )


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedRequest(f'"{name}" must be an integer')
    return value


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedRequest(f'"{name}" must be a number')
    return value


def _read_messages(messages: list[Any], remote_images: bool) -> tuple[list[str], list[Turn]]:
    system: list[str] = []
    turns: list[Turn] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the results
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise UnsupportedRequest(f"{where} must be an object")
        role = msg.get("role")
        content = msg.get("content")
        parts: list[Part]
        if role in ("system", "developer"):
            text = text_of(content, where)
            if text:
                system.append(text)
            continue
        if role == "user":
            parts = list(_user_parts(content, where, remote_images))
        elif role == "assistant":
            parts = [Text(t) for t in [text_of(content, where, refusal=True)] if t]
            for j, call in enumerate(msg.get("tool_calls") or ()):
                parsed = _tool_call(call, f"{where}.tool_calls[{j}]")
                names[parsed.id] = parsed.name
                parts.append(parsed)
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in names:
                raise UnsupportedRequest(
                    f"{where}.tool_call_id must name a tool call of an earlier assistant message"
                )
            parts = [ToolResult(call_id, names[call_id], text_of(content, where))]
        else:
            raise UnsupportedRequest(f'{where}.role "{role}" is not supported')
        side: Literal["user", "assistant"] = "assistant" if role == "assistant" else "user"
        if turns and turns[-1].role == side:
            turns[-1].parts.extend(parts)
        else:
            turns.append(Turn(side, parts))
    return system, turns


def text_of(content: Any, where: str, *, refusal: bool = False) -> str:
    """The text of a message content that may only hold text (a string or text parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise UnsupportedRequest(f"{where}.content must be a string or a list of parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and refusal and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise UnsupportedRequest(f'{where}.content: parts of type "{kind}" are not supported')
    return "".join(texts)


def _user_parts(content: Any, where: str, remote_images: bool) -> Iterable[Part]:
    if isinstance(content, str):
        if content:
            yield Text(content)
        return
    if not isinstance(content, list):
        raise UnsupportedRequest(f"{where}.content must be a string or a list of parts")
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                yield Text(part["text"])
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = part["image_url"].get("url")
            if remote_images and isinstance(url, str) and url.startswith(("https://", "http://")):
                yield RemoteImage(url)
                continue
            mime, data = parse_data_url(url, f"{where}.content[{k}]")
            yield Media("image", mime, data)
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            fmt = audio.get("format")
            if fmt not in ("wav", "mp3") or not isinstance(audio.get("data"), str):
                raise UnsupportedRequest(
                    f"{where}.content[{k}]: input_audio needs data and wav/mp3"
                )
            yield Media("audio", f"audio/{fmt}", _base64(audio["data"], f"{where}.content[{k}]"))
        else:
            raise UnsupportedRequest(
                f'{where}.content[{k}]: parts of type "{kind}" are not supported'
            )


def parse_data_url(url: Any, where: str) -> tuple[str, str]:
    """(mime type, base64 data) of a ``data:<mime>;base64,<data>`` URL.

    Remote URLs are refused: fetching them would make the sidecar download whatever a
    request names, and the providers here do not fetch arbitrary URLs either.
    """
    if not isinstance(url, str) or not url.startswith("data:"):
        raise UnsupportedRequest(
            f"{where}: only data: URLs (data:<mime>;base64,...) are supported for images"
        )
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not mime:
        raise UnsupportedRequest(f"{where}: data URL must be data:<mime>;base64,<data>")
    return mime.lower(), _base64(data, where)


def _base64(data: str, where: str) -> str:
    # Checked here so that a broken image is the client's 400, not a provider's.
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnsupportedRequest(f"{where}: data is not valid base64") from exc
    return data


def _tool_call(call: Any, where: str) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UnsupportedRequest(f"{where} must be a function call with a name")
    call_id = call.get("id")
    if not isinstance(call_id, str):
        raise UnsupportedRequest(f"{where}.id must be a string")
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise UnsupportedRequest(f"{where}.function.arguments must be a JSON object")
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return ToolCall(
        call_id, function["name"], arguments, signature if isinstance(signature, str) else None
    )


def _read_tools(tools: Any) -> list[FunctionTool]:
    out = []
    for i, tool in enumerate(tools or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict):
            raise UnsupportedRequest(f"tools[{i}]: only function tools are supported")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise UnsupportedRequest(f"tools[{i}].function.name must be a non-empty string")
        description = function.get("description")
        parameters = function.get("parameters")
        out.append(
            FunctionTool(
                name,
                description if isinstance(description, str) and description else None,
                parameters if isinstance(parameters, dict) else None,
            )
        )
    return out


def _read_tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return ToolChoice("function", function["name"])
    raise UnsupportedRequest('"tool_choice" must be auto, none, required or a named function')


def _read_response_format(fmt: Any) -> ResponseFormat:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return ResponseFormat("text")
    if kind == "json_object":
        return ResponseFormat("json_object")
    spec = fmt.get("json_schema") if kind == "json_schema" else None
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        name, description = spec.get("name"), spec.get("description")
        return ResponseFormat(
            "json_schema",
            spec["schema"],
            name if isinstance(name, str) else None,
            description if isinstance(description, str) else None,
        )
    raise UnsupportedRequest('"response_format" must be text, json_object or json_schema')


# -- embeddings ------------------------------------------------------------------------------


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The texts of an OpenAI embeddings request (token-id inputs are refused)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise UnsupportedRequest('"input" must be a string or a list of strings')


def dimensions(body: dict[str, Any]) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnsupportedRequest('"dimensions" must be a positive integer')
    return value


def embeddings_body(
    body: dict[str, Any], model: str, vectors: Sequence[Sequence[float]], usage: Usage
) -> bytes:
    """The OpenAI embeddings answer; base64 vectors are little-endian float32, as OpenAI's."""
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, vector in enumerate(vectors):
        values: Any = list(vector)
        if not all(type(v) is float or type(v) is int for v in values):
            raise MalformedAnswer(f"provider sent embedding {i} with values that are not numbers")
        if as_base64:
            values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": values})
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        }
    )


# -- the answer, written ---------------------------------------------------------------------


@dataclass(slots=True)
class Choice:
    index: int
    text: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str | None


def new_id() -> str:
    return "chatcmpl-" + uuid4().hex


def new_call_id() -> str:
    return "call_" + uuid4().hex[:24]


def tool_call_json(
    index: int, call_id: str, name: str, arguments: str, signature: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    if signature:
        # Where Google's own OpenAI-compatible endpoint puts it; clients echo it back.
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def usage_json(usage: Usage, reasoning_tokens: int = 0, cached_tokens: int = 0) -> dict[str, Any]:
    """OpenAI's usage object; ``cached_tokens`` are the part of the prompt read from a cache."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def completion(
    response_id: str,
    model: str,
    choices: Iterable[Choice],
    usage: Usage,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
) -> bytes:
    """A whole ``chat.completion`` body."""
    out = []
    for c in choices:
        message: dict[str, Any] = {"role": "assistant", "content": c.text, "refusal": None}
        if c.tool_calls:
            message["tool_calls"] = [
                {k: v for k, v in call.items() if k != "index"} for call in c.tool_calls
            ]
        out.append(
            {
                "index": c.index,
                "message": message,
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
        )
    return orjson.dumps(
        {
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": out,
            "usage": usage_json(usage, reasoning_tokens, cached_tokens),
        }
    )


class ChunkWriter:
    """SSE ``chat.completion.chunk`` events of one streamed answer (one id, one timestamp).

    The first delta of each choice carries ``role``; nothing is written for a provider
    event that carries no content, so the client's first byte is real content (until
    then the sidecar may still fail over).
    """

    def __init__(self, model: str) -> None:
        self.id = new_id()
        self.model = model
        self.created = int(time.time())
        self._started: set[int] = set()

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(
        self,
        index: int = 0,
        *,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str | None = None,
    ) -> bytes:
        delta: dict[str, Any] = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        if content is not None:
            delta["content"] = content
        if tool_calls:
            delta["tool_calls"] = tool_calls
        return self._event(
            [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )

    def usage(self, usage: Usage, reasoning_tokens: int = 0, cached_tokens: int = 0) -> bytes:
        """The last chunk OpenAI sends when asked for usage: no choices, only usage."""
        return self._event([], usage_json(usage, reasoning_tokens, cached_tokens))
