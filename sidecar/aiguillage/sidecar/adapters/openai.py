"""OpenAI wire schema: OpenAI, Mistral, OVHcloud, Scaleway, vLLM, Ollama.

Requests in the OpenAI shape pass through with only ``model`` replaced, so the
hot path parses the client body once and the provider's answer only to read usage.
For streams the sidecar always asks for usage (accounting needs it) and drops the
usage chunk again when the client did not ask for it. Every stream chunk is parsed, so
that a garbled one ends the stream with an error event instead of reaching the client's
SDK as unparsable data. Responses API streams have no ``[DONE]``: they end with a
``response.completed`` (or ``response.incomplete``) event that carries the usage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from aiguillage.sidecar.adapters.base import (
    Adapter,
    Call,
    Operation,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from aiguillage.sidecar.errors import UpstreamProtocol

PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.EMBEDDINGS: "/embeddings",
    Operation.COMPLETIONS: "/completions",
    Operation.RESPONSES: "/responses",
}
DONE = b"[DONE]"
# Responses API events that end a stream properly; their ``response`` carries the usage.
RESPONSE_END = frozenset({"response.completed", "response.incomplete"})


def usage_of(body: dict[str, Any]) -> Usage:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
        int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0),
    )


class OpenAIAdapter(Adapter):
    api = "openai"
    operations = frozenset(PATHS)

    def __init__(self, provider: Any, credential: str | None) -> None:
        super().__init__(provider, credential)
        self._base = provider.endpoint.rstrip("/")
        self._headers = {"content-type": "application/json"}
        if credential:
            self._headers["authorization"] = f"Bearer {credential}"

    def build(self, call: Call, model: str) -> UpstreamRequest:
        body = call.body
        body["model"] = model
        if call.stream and call.operation in (Operation.CHAT, Operation.COMPLETIONS):
            options = body.get("stream_options")
            if not isinstance(options, dict) or not options.get("include_usage"):
                body["stream_options"] = {**(options or {}), "include_usage": True}
        return UpstreamRequest(
            self._base + PATHS[call.operation], self._headers, orjson.dumps(body)
        )

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocol("provider answered with invalid JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamProtocol("provider answered with JSON that is not an object")
        return raw, usage_of(parsed)

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        return OpenAIStream(call.client_wants_usage)


class OpenAIStream(StreamTranslator):
    def __init__(self, client_wants_usage: bool) -> None:
        self.usage = Usage()
        self.done = False
        self._forward_usage = client_wants_usage
        # Events relayed so far: a Responses stream numbers its events from 0, so this is the
        # sequence_number of an error event the sidecar appends (see frontends.responses).
        self.relayed = 0

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if data == DONE:
            self.done = True
            return (b"data: [DONE]\n\n",)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocol("provider sent an invalid stream chunk") from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocol("provider sent a stream chunk that is not an object")
        kind = chunk.get("type")
        if chunk.get("error") or event == "error" or kind in ("error", "response.failed"):
            raise UpstreamProtocol("provider sent an error event in the stream")
        if kind in RESPONSE_END:
            self.done = True
            response = chunk.get("response")
            if isinstance(response, dict):
                self.usage = usage_of(response)
        elif chunk.get("usage"):
            self.usage = usage_of(chunk)
            if not chunk.get("choices") and not self._forward_usage:
                return ()
        name = b"event: " + event.encode() + b"\n" if event else b""
        self.relayed += 1
        return (name + b"data: " + data + b"\n\n",)
