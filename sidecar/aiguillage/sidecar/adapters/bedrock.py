"""Amazon Bedrock Runtime, Converse API: ``/model/{modelId}/converse`` and ``/converse-stream``.

Request (from :class:`~.openai_chat.ChatRequest`): system text becomes the ``system`` list;
turns become ``messages`` whose content blocks are ``text``, ``image`` (format and base64
``bytes``), ``toolUse`` and ``toolResult``; ``max_tokens``/``temperature``/``top_p``/
``stop`` go in ``inferenceConfig``; function tools become ``toolConfig.tools[].toolSpec``
with their JSON Schema in ``inputSchema.json``; a ``json_schema`` response format becomes
``outputConfig.textFormat`` (Bedrock's structured outputs); ``json_object`` mode, which
Converse lacks, is emulated by :mod:`.json_mode` (an instruction, a ``{`` prefill as a last
assistant message, and a check of the answer). Not expressible, so refused with a 400:
``n`` > 1, audio input and ``tool_choice: none`` once the conversation holds tool calls
(Converse requires the tools then and has no "none" choice; without tool history the tools
are simply not sent). Dropped as harmless: ``seed``, ``presence_penalty``,
``frequency_penalty``.

Converse answers carry no model name: answers name the target's model id, the one asked
for (as other adapters name the model that served, never the route).

Every request is signed with AWS Signature V4 (service ``bedrock``) by botocore's signer.
The credential file holds JSON ``{"accessKeyId", "secretAccessKey", "sessionToken"?}``;
text that is not JSON is taken as a Bedrock API key and sent as a bearer token. The region
comes from ``options.region``, else from the ``bedrock-runtime.{region}.amazonaws.com``
host (validated in :mod:`.options`). botocore is imported here only, so a sidecar without a
Bedrock provider never loads it (see :data:`~aiguillage.sidecar.adapters.MODULES`).

Streams are binary ``application/vnd.amazon.eventstream`` frames, decoded by
:func:`event_stream` (registered as ``"aws-eventstream"``); exception frames (throttling,
model stream errors...) raise UpstreamProtocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import yarl
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.eventstream import EventStreamBuffer, ParserError  # type: ignore[import-untyped]

from aiguillage.sidecar import upstream
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
    END_OF_STREAM,
    ChatRequest,
    Choice,
    ChunkWriter,
    Media,
    Text,
    ToolCall,
    ToolResult,
    Turn,
    UnsupportedRequest,
    as_openai_error,
    completion,
    load_object,
    new_id,
    parse_chat,
    tool_call_json,
)
from aiguillage.sidecar.adapters.options import BedrockOptions, parse_options
from aiguillage.sidecar.config import Provider, SizeLimits
from aiguillage.sidecar.credentials import credential_problem
from aiguillage.sidecar.errors import (
    ConfigError,
    MalformedAnswer,
    ResponseTooLarge,
    UpstreamProtocol,
)

SIGNING_NAME = "bedrock"
EVENT_STREAM = "aws-eventstream"
# An event-stream frame's prelude, CRCs and headers (at most 128 KiB, as botocore reads them).
FRAME_OVERHEAD = 16 + 128 * 1024
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def region_of(provider: Provider) -> str:
    options: BedrockOptions = parse_options("bedrock", provider.endpoint, provider.options)
    region = options.region_at(urlsplit(provider.endpoint).hostname or "")
    assert region is not None  # parse_options refuses a provider without one
    return region


def credentials_of(provider: Provider, text: str | None) -> Credentials | str:
    """botocore Credentials from the credential's JSON, or the text as a Bedrock API key."""
    where = f"credential file {provider.credential!r} of the provider at {provider.endpoint}"
    if not text:
        raise ConfigError(f"provider at {provider.endpoint}: api bedrock needs a credential")
    if not text.lstrip().startswith("{"):
        return text.strip()
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{where}: not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a JSON object")
    key, secret, token = (data.get(k) for k in ("accessKeyId", "secretAccessKey", "sessionToken"))
    if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise ConfigError(f'{where}: needs string fields "accessKeyId" and "secretAccessKey"')
    if token is not None and not isinstance(token, str):
        raise ConfigError(f'{where}: "sessionToken" must be a string')
    # JSON escapes let control characters through the file's own check: each field goes
    # into a header (or the signature), so each must pass it too.
    for name, value in (("accessKeyId", key), ("secretAccessKey", secret), ("sessionToken", token)):
        problem = credential_problem(value.encode()) if value else None
        if problem is not None:
            raise ConfigError(f'{where}: "{name}" {problem}')
    return Credentials(key, secret, token or None)


# -- request ---------------------------------------------------------------------------------


def request_body(req: ChatRequest, mode: JsonMode | None = None) -> dict[str, Any]:
    """The Converse request body for a parsed OpenAI chat request.

    ``mode``: the client asked for JSON mode, emulated as :mod:`.json_mode` says.
    """
    if req.n > 1:
        raise UnsupportedRequest('"n" > 1 is not supported by providers of api bedrock')
    body: dict[str, Any] = {"messages": [_message(turn) for turn in req.turns]}
    system = req.system
    if mode is not None:
        system = [*system, json_mode.INSTRUCTION]
        if mode.prefill:
            body["messages"].append({"role": "assistant", "content": [{"text": json_mode.PREFILL}]})
    if system:
        body["system"] = [{"text": s} for s in system]
    config: dict[str, Any] = {}
    for key, value in (
        ("maxTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
    ):
        if value is not None:
            config[key] = value
    if req.stop:
        config["stopSequences"] = req.stop
    if config:
        body["inferenceConfig"] = config
    tool_config = _tool_config(req)
    if tool_config:
        body["toolConfig"] = tool_config
    fmt = req.response_format
    if fmt.kind == "json_schema":
        schema: dict[str, Any] = {"schema": orjson.dumps(fmt.schema).decode()}
        if fmt.name:
            schema["name"] = fmt.name
        if fmt.description:
            schema["description"] = fmt.description
        body["outputConfig"] = {
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}
        }
    return body


def _message(turn: Turn) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for part in turn.parts:
        if isinstance(part, Text):
            blocks.append({"text": part.text})
        elif isinstance(part, Media):
            fmt = IMAGE_FORMATS.get(part.mime) if part.kind == "image" else None
            if fmt is None:
                raise UnsupportedRequest(
                    f"{part.mime} input is not supported by providers of api bedrock "
                    "(images: png, jpeg, gif, webp)"
                )
            blocks.append({"image": {"format": fmt, "source": {"bytes": part.data}}})
        elif isinstance(part, ToolCall):
            blocks.append(
                {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.arguments}}
            )
        elif isinstance(part, ToolResult):
            blocks.append(
                {"toolResult": {"toolUseId": part.call_id, "content": [{"text": part.content}]}}
            )
    return {"role": turn.role, "content": blocks}


def _tool_config(req: ChatRequest) -> dict[str, Any] | None:
    choice = req.tool_choice
    if not req.tools:
        return None
    if choice is not None and choice.mode == "none":
        if req.has_tool_history:
            raise UnsupportedRequest(
                'tool_choice "none" is not supported by providers of api bedrock once the '
                "conversation holds tool calls"
            )
        return None
    tools = []
    for tool in req.tools:
        spec: dict[str, Any] = {
            "name": tool.name,
            "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}},
        }
        if tool.description:
            spec["description"] = tool.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    # "auto" is Converse's default; sending it explicitly fails on models without toolChoice.
    if choice is not None and choice.mode == "required":
        config["toolChoice"] = {"any": {}}
    elif choice is not None and choice.mode == "function":
        config["toolChoice"] = {"tool": {"name": choice.name}}
    return config


# -- answer ----------------------------------------------------------------------------------


def usage_of(usage: Any) -> Usage:
    usage = usage_object(usage, "usage")
    if usage is None:
        return Usage()
    return Usage(
        token_count(usage.get("inputTokens"), "inputTokens"),
        token_count(usage.get("outputTokens"), "outputTokens"),
    )


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def read_converse_response(
    raw: bytes, model: str, mode: JsonMode | None = None
) -> tuple[bytes, Usage]:
    body = load_object(raw, "Converse answer")
    output = body.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise MalformedAnswer("provider answered without output.message.content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        use = block.get("toolUse")
        if isinstance(use, dict) and isinstance(use.get("name"), str):
            calls.append(
                tool_call_json(
                    len(calls),
                    str(use.get("toolUseId", "")),
                    use["name"],
                    orjson.dumps(use.get("input") or {}).decode(),
                )
            )
    usage = usage_of(body.get("usage"))
    text = "".join(texts) if texts else None
    finish = finish_reason(body.get("stopReason"))
    if mode is not None:
        text = json_mode.answer_text(mode, text, bool(calls))
        json_mode.check_json_object(text, finish, bool(calls))
    return completion(new_id(), model, [Choice(0, text, calls, finish)], usage), usage


class ConverseStream(StreamTranslator):
    """ConverseStream events -> OpenAI chunks.

    Nothing is written for ``messageStart``: the role rides on the first content delta,
    so the client's first byte is real content. ``messageStop`` is the provider's proper
    end (finish reason); ``metadata`` (usage) follows it; ``[DONE]`` is written when the
    event stream closes cleanly after ``messageStop``.
    """

    def __init__(self, model: str, client_wants_usage: bool, mode: JsonMode | None = None) -> None:
        self.usage = Usage()
        self.done = False
        self._wants_usage = client_wants_usage
        self._writer = ChunkWriter(model)
        self._tools: dict[int, int] = {}  # contentBlockIndex -> tool call index
        self._ended = False
        self._json = JsonTextStream(mode) if mode is not None else None

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if event == END_OF_STREAM:
            if not self.done or self._ended:
                return ()
            self._ended = True
            return (DONE_EVENT,)
        if event not in _EVENTS:
            return ()  # messageStart, contentBlockStop, and events newer than this code
        payload = load_object(data, f"{event} event")
        return _EVENTS[event](self, payload)

    def _block_start(self, payload: dict[str, Any]) -> list[bytes]:
        start = payload.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict) or not isinstance(use.get("name"), str):
            return []
        index = len(self._tools)
        self._tools[int(payload.get("contentBlockIndex") or 0)] = index
        call = tool_call_json(index, str(use.get("toolUseId", "")), use["name"], "")
        return [self._writer.delta(tool_calls=[call])]

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        if isinstance(delta.get("text"), str) and delta["text"]:
            text = delta["text"] if self._json is None else self._json.text(delta["text"])
            return [self._writer.delta(content=text)]
        use = delta.get("toolUse")
        block = int(payload.get("contentBlockIndex") or 0)
        if isinstance(use, dict) and isinstance(use.get("input"), str) and block in self._tools:
            call = {"index": self._tools[block], "function": {"arguments": use["input"]}}
            return [self._writer.delta(tool_calls=[call])]
        return []  # reasoning content and citations are not part of an OpenAI answer

    def _message_stop(self, payload: dict[str, Any]) -> list[bytes]:
        finish = finish_reason(payload.get("stopReason"))
        if self._json is not None:
            self._json.finish(finish, bool(self._tools))
        self.done = True
        return [self._writer.delta(finish_reason=finish)]

    def _metadata(self, payload: dict[str, Any]) -> list[bytes]:
        self.usage = usage_of(payload.get("usage"))
        return [self._writer.usage(self.usage)] if self._wants_usage else []


_EVENTS = {
    "contentBlockStart": ConverseStream._block_start,
    "contentBlockDelta": ConverseStream._block_delta,
    "messageStop": ConverseStream._message_stop,
    "metadata": ConverseStream._metadata,
}


async def event_stream(resp: upstream.Response, limits: SizeLimits) -> upstream.Events:
    """``(event type, JSON payload)`` of each event-stream frame, then END_OF_STREAM; the
    frames completed by one piece of the body come as one batch.

    Exception and error frames raise UpstreamProtocol (after the batch of the frames before
    them); bad frames (CRC, lengths, headers that are not UTF-8) raise MalformedAnswer, and a
    frame past ``size_limits.max_event_bytes`` (payload and headers) ResponseTooLarge; a
    stream that stops mid-frame is cut (UpstreamProtocol). The HTTP client's errors map as
    in upstream.sse_events.
    """
    buffer = EventStreamBuffer()
    cap = limits.max_event_bytes + FRAME_OVERHEAD
    pending = 0
    try:
        async with upstream.stream_errors():
            async for data in resp.chunks():
                buffer.add_data(data)
                pending += len(data)
                batch: list[upstream.Event] = []
                try:
                    for message in buffer:
                        pending -= message.prelude.total_length
                        batch.append(_event(message.headers, message.payload))
                except BaseException:
                    if batch:
                        yield batch
                    raise
                if batch:
                    yield batch
                if pending > cap:
                    raise ResponseTooLarge(f"provider sent an event-stream frame over {cap} bytes")
    except ParserError as exc:
        raise MalformedAnswer(
            f"provider sent a bad event-stream frame ({type(exc).__name__})"
        ) from exc
    except UnicodeDecodeError:
        raise MalformedAnswer("provider sent an event-stream header that is not UTF-8") from None
    if pending:
        raise UpstreamProtocol("stream cut in the middle of an event-stream frame")
    yield [(END_OF_STREAM, b"")]


def _event(headers: dict[str, Any], payload: bytes) -> tuple[str, bytes]:
    kind = headers.get(":message-type")
    if kind == "event":
        return str(headers.get(":event-type", "")), payload
    if kind == "exception":
        name = headers.get(":exception-type", "exception")
        try:
            message = orjson.loads(payload).get("message")
        except (orjson.JSONDecodeError, AttributeError):
            message = None
        detail = f": {str(message)[:200]}" if message else ""
        raise UpstreamProtocol(f"provider sent {name} in the stream{detail}")
    code = headers.get(":error-code", kind)
    raise UpstreamProtocol(f"provider sent an error frame in the stream ({code})")


upstream.STREAM_FORMATS[EVENT_STREAM] = upstream.StreamFormat(
    event_stream, frozenset({"application/vnd.amazon.eventstream"})
)


def error_to_openai(status: int, body: bytes) -> bytes:
    """Bedrock's ``{"message": ...}`` (or ``"Message"``) error body as an OpenAI error body."""
    return as_openai_error(status, body, ("message", "Message"))


# -- the adapter -----------------------------------------------------------------------------


class BedrockAdapter(Adapter):
    api = "bedrock"
    operations = frozenset({Operation.CHAT})
    stream_format = EVENT_STREAM

    def __init__(self, provider: Provider, credential: str | None) -> None:
        super().__init__(provider, credential)
        self._base = provider.endpoint.rstrip("/") + "/model/"
        self._auth = credentials_of(provider, credential)
        self._signer = (
            SigV4Auth(self._auth, SIGNING_NAME, region_of(provider))
            if isinstance(self._auth, Credentials)
            else None
        )

    def secrets(self) -> list[str]:
        if isinstance(self._auth, Credentials):
            parts = (self._auth.access_key, self._auth.secret_key, self._auth.token)
            return [p for p in parts if p]
        return [self._auth]

    def build(self, call: Call, model: str) -> UpstreamRequest:
        mode = json_mode.json_object_mode(call.body)
        body = orjson.dumps(request_body(parse_chat(call.body, self.api), mode))
        action = "/converse-stream" if call.stream else "/converse"
        # Sign the URL exactly as it is sent: yarl unescapes characters such as ":" that the
        # path allows (as the sidecar always sent it), and AWS signs the path it receives.
        url = str(yarl.URL(self._base + quote(model, safe="") + action))
        accept = "application/vnd.amazon.eventstream" if call.stream else "application/json"
        headers = {"content-type": "application/json", "accept": accept}
        if self._signer is None:
            headers["authorization"] = f"Bearer {self._auth}"
            return UpstreamRequest(url, headers, body)
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        self._signer.add_auth(request)
        return UpstreamRequest(url, {k: str(v) for k, v in request.headers.items()}, body)

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        return read_converse_response(raw, model, json_mode.json_object_mode(call.body))

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        mode = json_mode.json_object_mode(call.body)
        return ConverseStream(model, call.client_wants_usage, mode)

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        return error_to_openai(status, body)
