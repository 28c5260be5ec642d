"""Simulated OpenAI-compatible provider (OpenAI, Mistral, Scaleway, OVHcloud, vLLM, Ollama...).

Wire format, as the official ``openai`` Python SDK parses it:

* ``POST {base}/chat/completions``: a ``chat.completion`` object, or with ``"stream": true`` a
  ``text/event-stream`` of ``data: <chat.completion.chunk>`` events ended by ``data: [DONE]``.
  The first chunk carries the role, then one chunk per content delta, then a chunk with the
  ``finish_reason``; with ``stream_options.include_usage`` every chunk has ``"usage": null`` and a
  last chunk with ``"choices": []`` carries the usage. When the request has ``tools`` (and
  ``tool_choice`` is not ``"none"`` and the last message is not a tool result) the answer calls
  the forced function, or else the first one, with arguments that fit its parameters' schema
  (``finish_reason: "tool_calls"``). ``response_format`` ``json_schema`` gets an answer that
  fits the schema, ``json_object`` one that fits a schema the prompt spells out, else
  ``{"answer": ...}`` (see :mod:`.structured`). ``max_tokens``/``max_completion_tokens``
  below the answer's length cut a text answer (``finish_reason: "length"``).
* ``POST {base}/completions`` (legacy ``text_completion``; ``max_tokens`` defaults to 16 there),
  ``POST {base}/embeddings`` (deterministic unit vectors, ``embedding_dims`` wide unless the
  request gives ``dimensions``; ``encoding_format: "base64"`` gives little-endian float32, which
  is what the SDK asks for by default), ``POST {base}/responses`` (Responses API, plain and
  streamed with named ``response.*`` events), ``GET {base}/models`` and ``GET {base}/models/{id}``.
* Auth: ``Authorization: Bearer <key>``. Errors: ``{"error": {"message", "type", "param",
  "code"}}``. In-stream error: a ``data: {"error": {...}}`` event, then the stream ends without
  ``[DONE]`` (the SDK raises ``APIError``).
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final

from aiohttp import web

from . import openai_responses, structured
from .answers import (
    Answer,
    count_words,
    embedding_vector,
    forced_function,
    tool_name,
    tool_parameters,
)
from .base import Call, Handler, Simulator
from .faults import ApiError, Fault
from .streaming import sse

__all__ = ["OpenAISimulator", "sse"]

DONE: Final = b"data: [DONE]\n\n"

_TYPES: Final = {429: "requests"}
_CODES: Final = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_MESSAGES: Final = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "You are not allowed to access this resource.",
    404: "The requested model does not exist or you do not have access to it.",
    409: "Conflict.",
    422: "Unprocessable request.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
}


def _redact(key: str) -> str:
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


class OpenAISimulator(Simulator):
    """OpenAI wire format under a configurable base path.

    :param base_path: prefix of the API routes (``"/v1"``; ``""`` for none).
    :param models: when given, other models are answered with 404 ``model_not_found``; also the
        list ``GET /models`` returns.
    :param embedding_dims: default embedding width.

    Other keyword arguments are those of :class:`~.base.Simulator`.
    """

    kind: ClassVar[str] = "openai"
    in_stream_error_status: ClassVar[int] = 500
    request_id_header: ClassVar[str] = "x-request-id"

    def __init__(
        self,
        name: str = "openai",
        *,
        base_path: str = "/v1",
        models: Iterable[str] | None = None,
        embedding_dims: int = 8,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        stripped = base_path.strip("/")
        self.base_path = f"/{stripped}" if stripped else ""
        self.models: tuple[str, ...] | None = tuple(models) if models is not None else None
        self.embedding_dims = embedding_dims

    # -- routes --------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        base = self.base_path
        return [
            ("POST", f"{base}/chat/completions", self.handle_chat),
            ("POST", f"{base}/completions", self.handle_completions),
            ("POST", f"{base}/embeddings", self.handle_embeddings),
            ("POST", f"{base}/responses", self.handle_responses),
            ("GET", f"{base}/models", self.handle_models),
            ("GET", f"{base}/models/{{model}}", self.handle_model),
        ]

    # -- auth and errors -----------------------------------------------------------------------

    def authenticate(self, call: Call) -> None:
        if self.api_key is None:
            return
        auth = call.request.headers.get("Authorization", "")
        if not auth:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                error_code="",
            )
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            raise ApiError(401, f"Incorrect API key provided: {_redact(token.strip())}.")

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        status = err.status
        default_type = "server_error" if status >= 500 else "invalid_request_error"
        code = _CODES.get(status) if err.error_code is None else (err.error_code or None)
        return {
            "error": {
                "message": err.message or _MESSAGES.get(status, f"HTTP {status}"),
                "type": err.error_type or _TYPES.get(status, default_type),
                "param": err.param,
                "code": code,
            }
        }

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(
            404, f"Invalid URL ({call.request.method} {call.request.path})", error_code=""
        )

    def stream_error(self, fault: Fault) -> bytes:
        """The in-stream error event of an ``in_stream_error`` fault."""
        err = ApiError.from_fault(fault, self.in_stream_error_status)
        return sse(self.error_body_for_stream(err))

    def error_body_for_stream(self, err: ApiError) -> dict[str, Any]:
        status = err.status
        return {
            "error": {
                "message": err.message or _MESSAGES.get(status, f"HTTP {status}"),
                "type": err.error_type
                or ("server_error" if status >= 500 else "invalid_request_error"),
                "param": None,
                "code": err.error_code,
            }
        }

    # -- helpers -------------------------------------------------------------------------------

    def resolve_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "you must provide a model parameter", param="model", error_code="")
        if self.models is not None and model not in self.models:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                error_code="model_not_found",
            )
        return model

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _chat_tool(body: dict[str, Any]) -> str | None:
        """The function the answer calls, or ``None`` for a text answer."""
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return None
        choice = body.get("tool_choice", "auto")
        if choice == "none":
            return None
        messages = body.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            if isinstance(last, dict) and last.get("role") in ("tool", "function"):
                return None
        return forced_function(choice) or tool_name(tools[0])

    def tool_arguments(self, tools: Any, name: str | None) -> str:
        """Arguments of a call to the tool ``name``, fitting its parameters' schema."""
        for tool in tools if isinstance(tools, list) else ():
            if tool_name(tool) == name:
                return json.dumps(structured.arguments(tool_parameters(tool), self.reply))
        return "{}"

    def json_answer(self, fmt: Any, prompt: Any) -> Answer | None:
        """The answer to a JSON response format (chat's ``response_format`` or the Responses
        API's ``text.format``), or None for text."""
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            texts = structured.strings_in(prompt)
            return self.structured(structured.json_object_text(texts, self.reply))
        if kind == "json_schema" and isinstance(fmt, dict):
            spec = fmt.get("json_schema") if "json_schema" in fmt else fmt
            schema = spec.get("schema") if isinstance(spec, dict) else None
            return self.structured(json.dumps(structured.instance(schema or {}, self.reply)))
        return None

    def _max_tokens(self, body: dict[str, Any], *names: str) -> Any:
        for name in names:
            if body.get(name) is not None:
                return body[name]
        return None

    # hooks for the Azure variant
    def decorate_completion(self, obj: dict[str, Any]) -> None:
        """Add provider-specific fields to a non-streamed chat completion."""

    def stream_prologue(self, call: Call) -> list[bytes]:
        """Frames sent before the first chat chunk."""
        return []

    # -- chat completions ----------------------------------------------------------------------

    async def handle_chat(self, call: Call) -> web.StreamResponse:
        body = call.json()
        return await self.chat(call, body, self.resolve_model(body))

    async def chat(self, call: Call, body: dict[str, Any], model: str) -> web.StreamResponse:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400, "Missing required parameter: 'messages'.", param="messages", error_code=""
            )
        prompt = max(1, count_words(messages))
        tool = self._chat_tool(body)
        arguments = self.tool_arguments(body.get("tools"), tool)
        answer = (
            self.json_answer(body.get("response_format"), messages)
            or self.prompted_json(messages)
            or self.answer(
                self._max_tokens(body, "max_completion_tokens", "max_tokens"),
                prompt={"messages": messages},
            )
        )
        seq = self.new_id()
        cid = f"chatcmpl-sim{seq:010d}"
        created = int(time.time())
        completion = 2 if tool else answer.tokens
        self.bill(model, prompt, completion)
        finish = "tool_calls" if tool else ("length" if answer.truncated else "stop")
        tool_call = {
            "id": f"call_sim{seq:010d}",
            "type": "function",
            "function": {"name": tool, "arguments": arguments},
        }
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if tool else answer.text,
                "refusal": None,
                "annotations": [],
            }
            if tool:
                message["tool_calls"] = [tool_call]
            obj: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": self._usage(prompt, completion),
                "service_tier": "default",
                "system_fingerprint": "fp_simulator",
            }
            self.decorate_completion(obj)
            return await self.send_json(call, obj)

        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_simulator",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return sse(obj)

        if tool:
            first = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": tool_call["id"],
                        "type": "function",
                        "function": {"name": tool, "arguments": ""},
                    }
                ],
            }
            deltas = [chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})]
        else:
            first = {"role": "assistant", "content": "", "refusal": None}
            deltas = [chunk({"content": piece}) for piece in answer.pieces]
        epilogue = [chunk({}, finish)]
        if include_usage:
            epilogue.append(
                sse(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_simulator",
                        "choices": [],
                        "usage": self._usage(prompt, completion),
                    }
                )
            )
        epilogue.append(DONE)
        garbled = (
            b'data: {"id":"'
            + cid.encode()
            + b'","object":"chat.completion.chunk","choices":[{"delta":'
            b'{"content":"garbled\n\n'
        )
        return await self.stream(
            call,
            preamble=[*self.stream_prologue(call), chunk(first)],
            chunks=deltas,
            epilogue=epilogue,
            error_event=self.stream_error,
            garbled=garbled,
        )

    # -- legacy completions --------------------------------------------------------------------

    async def handle_completions(self, call: Call) -> web.StreamResponse:
        body = call.json()
        return await self.completions(call, body, self.resolve_model(body))

    async def completions(self, call: Call, body: dict[str, Any], model: str) -> web.StreamResponse:
        prompt_value = body.get("prompt")
        if prompt_value is None:
            raise ApiError(
                400, "Missing required parameter: 'prompt'.", param="prompt", error_code=""
            )
        prompt = max(1, count_words(prompt_value, "prompt"))
        max_tokens = body.get("max_tokens", 16)
        answer = self.answer(max_tokens, prompt={"prompt": prompt_value})
        cid = f"cmpl-sim{self.new_id():010d}"
        created = int(time.time())
        finish = "length" if answer.truncated else "stop"
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": answer.tokens,
            "total_tokens": prompt + answer.tokens,
        }

        def obj(text: str, finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_simulator",
                "choices": [
                    {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        if not body.get("stream"):
            full = obj(answer.text, finish)
            full["usage"] = usage
            return await self.send_json(call, full)
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        epilogue = [sse(obj("", finish))]
        if include_usage:
            last = obj("", None)
            last["choices"] = []
            last["usage"] = usage
            epilogue.append(sse(last))
        epilogue.append(DONE)
        return await self.stream(
            call,
            preamble=[],
            chunks=[sse(obj(piece, None)) for piece in answer.pieces],
            epilogue=epilogue,
            error_event=self.stream_error,
            garbled=b'data: {"id":"' + cid.encode() + b'","choices":[{"text":"garbled\n\n',
        )

    # -- embeddings ----------------------------------------------------------------------------

    async def handle_embeddings(self, call: Call) -> web.StreamResponse:
        body = call.json()
        return await self.embeddings(call, body, self.resolve_model(body))

    def _embedding_inputs(self, value: Any) -> list[str]:
        if isinstance(value, str):
            inputs: Sequence[Any] = [value]
        elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            inputs = [value]
        elif isinstance(value, list) and value:
            inputs = value
        else:
            raise ApiError(400, "'input' is a required property", param="input", error_code="")
        out: list[str] = []
        for item in inputs:
            if isinstance(item, str) and item:
                out.append(item)
            elif isinstance(item, list) and item and all(isinstance(v, int) for v in item):
                out.append(" ".join(str(v) for v in item))
            else:
                raise ApiError(400, "'$.input' is invalid.", param="input", error_code="")
        return out

    async def embeddings(self, call: Call, body: dict[str, Any], model: str) -> web.StreamResponse:
        texts = self._embedding_inputs(body.get("input"))
        dims = body.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
            raise ApiError(
                400, "'dimensions' must be a positive integer.", param="dimensions", error_code=""
            )
        width = dims or self.embedding_dims
        as_base64 = body.get("encoding_format") == "base64"
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = embedding_vector(text, width)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{width}f", *vector)).decode()
                if as_base64
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, len(t.split())) for t in texts)
        return await self.send_json(
            call,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- responses API (see openai_responses.py) ------------------------------------------------

    async def handle_responses(self, call: Call) -> web.StreamResponse:
        body = call.json()
        return await self.responses(call, body, self.resolve_model(body))

    async def responses(self, call: Call, body: dict[str, Any], model: str) -> web.StreamResponse:
        return await openai_responses.respond(self, call, body, model)

    # -- models --------------------------------------------------------------------------------

    def _model_obj(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": self.name}

    def listed_models(self) -> Sequence[str]:
        return self.models if self.models is not None else ("sim-chat", "sim-embedding")

    async def handle_models(self, call: Call) -> web.StreamResponse:
        return await self.send_json(
            call, {"object": "list", "data": [self._model_obj(m) for m in self.listed_models()]}
        )

    async def handle_model(self, call: Call) -> web.StreamResponse:
        model = call.request.match_info["model"]
        if self.models is not None and model not in self.models:
            raise ApiError(
                404,
                f"The model '{model}' does not exist",
                error_code="model_not_found",
                param="model",
            )
        return await self.send_json(call, self._model_obj(model))
