"""Simulated Anthropic Messages API.

Wire format, as the official ``anthropic`` Python SDK parses it:

* ``POST /v1/messages`` with ``x-api-key`` (or ``Authorization: Bearer <key>``, which is what the
  2.x SDKs send) and ``anthropic-version`` headers. ``model``,
  ``messages`` and ``max_tokens`` are required (400 ``invalid_request_error`` otherwise, e.g.
  ``"max_tokens: Field required"``); the system prompt is the separate ``system`` field.
* Non-streamed answer: a ``message`` object (``content`` blocks, ``stop_reason`` ``end_turn`` /
  ``max_tokens`` / ``tool_use``, ``usage``).
* ``"stream": true``: named SSE events, in the real API's order: ``message_start`` (the message
  with empty ``content`` and the input usage), ``content_block_start``, ``ping``,
  ``content_block_delta`` (``text_delta``, or ``input_json_delta`` for ``tool_use``),
  ``content_block_stop``, ``message_delta`` (``stop_reason`` and the **cumulative** usage),
  ``message_stop``. An in-stream error is ``event: error`` with the error body after the 200
  (``overloaded_error`` by default, which would be a 529 outside a stream).
* When ``tools`` are given (and ``tool_choice`` is not ``{"type": "none"}`` and the last user turn
  is not a ``tool_result``) the answer is a ``tool_use`` block calling the forced tool, or the
  first one, with an input that fits its ``input_schema``. ``output_config.format`` (or the
  beta ``output_format``) ``json_schema`` gets a text answer that fits the schema; a last
  assistant message ending in ``{`` (a prefill) is continued with the rest of a JSON object
  (one fitting a schema the prompt spells out, else ``{"answer": ...}``; see
  :mod:`.structured`).
* Errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the type the
  status implies (``rate_limit_error`` 429, ``overloaded_error`` 529, ``api_error`` 500...) and a
  ``request-id`` header; a 429 also gets ``anthropic-ratelimit-requests-*`` headers.
* Also ``POST /v1/messages/count_tokens`` and ``GET /v1/models``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import orjson
from aiohttp import web

from . import structured
from .answers import Answer, count_words
from .base import Call, Handler, Simulator
from .faults import ApiError, Fault

__all__ = ["AnthropicSimulator", "event"]

_TYPES: Final = {
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
_MESSAGES: Final = {
    400: "Invalid request.",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of requests has exceeded your per-minute rate limit.",
    500: "Internal server error",
    504: "Request timed out.",
    529: "Overloaded",
}


def event(name: str, obj: Any) -> bytes:
    """One named SSE event, ``data`` being ``obj`` as JSON."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


class AnthropicSimulator(Simulator):
    """Anthropic Messages API wire format.

    :param models: when given, other models get 404 ``not_found_error``.
    :param require_version: reject requests without ``anthropic-version`` (as the API does).

    Other keyword arguments are those of :class:`~.base.Simulator`.
    """

    kind: ClassVar[str] = "anthropic"
    in_stream_error_status: ClassVar[int] = 529
    request_id_header: ClassVar[str] = "request-id"

    def __init__(
        self,
        name: str = "anthropic",
        *,
        models: Iterable[str] | None = None,
        require_version: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        self.models: tuple[str, ...] | None = tuple(models) if models is not None else None
        self.require_version = require_version

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/messages", self.handle_messages),
            ("POST", "/v1/messages/count_tokens", self.handle_count_tokens),
            ("GET", "/v1/models", self.handle_models),
        ]

    # -- auth and errors -----------------------------------------------------------------------

    def authenticate(self, call: Call) -> None:
        headers = call.request.headers
        if self.api_key is not None:
            key = headers.get("x-api-key")
            if key is None:
                scheme, _, token = headers.get("Authorization", "").partition(" ")
                key = token.strip() if scheme.lower() == "bearer" else None
            if key is None:
                raise ApiError(401, "x-api-key header is required")
            if key != self.api_key:
                raise ApiError(401, "invalid x-api-key")
        if self.require_version and not headers.get("anthropic-version"):
            raise ApiError(400, "anthropic-version: header is required")

    def _error(self, err: ApiError) -> dict[str, Any]:
        return {
            "type": err.error_type or _error_type(err.status),
            "message": err.message or _MESSAGES.get(err.status, f"HTTP {err.status}"),
        }

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        return {"type": "error", "error": self._error(err), "request_id": call.request_id}

    def error_headers(self, call: Call, err: ApiError) -> dict[str, str]:
        if err.status != 429:
            return {}
        reset = datetime.now(UTC) + timedelta(seconds=err.retry_after or 1)
        return {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset.replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
        }

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(404, "Not Found")

    def stream_error(self, fault: Fault) -> bytes:
        err = ApiError.from_fault(fault, self.in_stream_error_status)
        return event("error", {"type": "error", "error": self._error(err)})

    # -- messages ------------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any], *, need_max_tokens: bool = True) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model: Field required")
        messages = body.get("messages")
        if messages is None:
            raise ApiError(400, "messages: Field required")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages: at least one message is required")
        if need_max_tokens:
            max_tokens = body.get("max_tokens")
            if max_tokens is None:
                raise ApiError(400, "max_tokens: Field required")
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
                raise ApiError(400, "max_tokens: Input should be a valid positive integer")
        if self.models is not None and model not in self.models:
            raise ApiError(404, f"model: {model}")
        return model

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        return max(1, count_words(body.get("messages")) + count_words(body.get("system"), "system"))

    @staticmethod
    def _tool(body: dict[str, Any]) -> str | None:
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return None
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            if choice.get("type") == "none":
                return None
            if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
                return str(choice["name"])
        last = body["messages"][-1]
        content = last.get("content") if isinstance(last, dict) else None
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return None
        return next(
            (
                str(t["name"])
                for t in tools
                if isinstance(t, dict) and isinstance(t.get("name"), str)
            ),
            None,
        )

    def _structured(self, body: dict[str, Any]) -> Answer | None:
        """The answer to a JSON schema output format or to a ``{`` prefill, if asked."""
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else None
        fmt = fmt if fmt is not None else body.get("output_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            value = structured.instance(fmt.get("schema") or {}, self.reply)
            return self.structured(json.dumps(value))
        rest = structured.prefill_continuation(body["messages"], body.get("system"), self.reply)
        return None if rest is None else self.structured(rest)

    def _tool_input(self, body: dict[str, Any], tool: str) -> Any:
        for spec in body.get("tools") or ():
            if isinstance(spec, dict) and spec.get("name") == tool:
                return structured.arguments(spec.get("input_schema"), self.reply)
        return {}

    async def handle_messages(self, call: Call) -> web.StreamResponse:
        body = call.json()
        model = self._validate(body)
        prompt = self._prompt_tokens(body)
        tool = self._tool(body)
        answer = (
            self._structured(body)
            or self.prompted_json([body.get("system"), body["messages"]])
            or self.answer(body.get("max_tokens"), prompt={"messages": body["messages"]})
        )
        seq = self.new_id()
        mid = f"msg_sim{seq:016d}"
        if tool:
            tool_input = self._tool_input(body, tool)
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_sim{seq:016d}",
                "name": tool,
                "input": tool_input,
            }
            stop_reason = "tool_use"
            output = 2
        else:
            block = {"type": "text", "text": answer.text}
            stop_reason = "max_tokens" if answer.truncated else "end_turn"
            output = answer.tokens
        self.bill(model, prompt, output)

        def usage(output_tokens: int) -> dict[str, Any]:
            return {
                "input_tokens": prompt,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            }

        message: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage(output),
        }
        if not body.get("stream"):
            return await self.send_json(call, message)

        start = {**message, "content": [], "stop_reason": None, "usage": usage(1)}
        if tool:
            first_block = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(tool_input)}]
        else:
            first_block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in answer.pieces]
        preamble = [
            event("message_start", {"type": "message_start", "message": start}),
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": first_block},
            ),
            event("ping", {"type": "ping"}),
        ]
        chunks = [
            event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
            for delta in deltas
        ]
        epilogue = [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {
                        "input_tokens": prompt,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "output_tokens": output,
                    },
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        return await self.stream(
            call,
            preamble=preamble,
            chunks=chunks,
            epilogue=epilogue,
            error_event=self.stream_error,
            garbled=b"event: content_block_delta\n"
            b'data: {"type":"content_block_delta","index":0,"delta":{"type":"te\n\n',
        )

    async def handle_count_tokens(self, call: Call) -> web.StreamResponse:
        body = call.json()
        self._validate(body, need_max_tokens=False)
        return await self.send_json(call, {"input_tokens": self._prompt_tokens(body)})

    async def handle_models(self, call: Call) -> web.StreamResponse:
        models = self.models if self.models is not None else ("sim-claude",)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in models
        ]
        return await self.send_json(
            call,
            {
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            },
        )
