"""OpenAI wire schema: OpenAI, Mistral, OVHcloud, Scaleway, vLLM, Ollama.

Requests in the OpenAI shape pass through with only ``model`` replaced, so the
hot path parses the client body once and the provider's answer only to read usage.
For streams the sidecar always asks for usage (accounting needs it) and drops the
usage chunk again when the client did not ask for it. Every stream chunk is parsed, so
that a garbled one ends the stream with an error event instead of reaching the client's
SDK as unparsable data. Responses API streams have no ``[DONE]``: they end with a
``response.completed`` (or ``response.incomplete``) event that carries the usage.

Passing bodies through does not mean passing garbage through: an answer must be a JSON
object whose list of results (``choices``, embeddings' ``data``, Responses' ``output``) is a
list of objects, a chat choice's ``message`` (``delta`` in a chunk) an object, and its usage
sane (see :func:`~.base.token_count`); anything else is a MalformedAnswer, which fails over
instead of reaching the client's SDK.
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
    token_count,
    usage_object,
)
from aiguillage.sidecar.adapters.openai_chat import as_openai_error
from aiguillage.sidecar.errors import MalformedAnswer, UpstreamProtocol

PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.EMBEDDINGS: "/embeddings",
    Operation.COMPLETIONS: "/completions",
    Operation.RESPONSES: "/responses",
}
DONE = b"[DONE]"
# Responses API events that end a stream properly; their ``response`` carries the usage.
RESPONSE_END = frozenset({"response.completed", "response.incomplete"})


# The list every client of an operation reads its results from.
RESULTS = {
    Operation.CHAT: "choices",
    Operation.COMPLETIONS: "choices",
    Operation.EMBEDDINGS: "data",
    Operation.RESPONSES: "output",
}


def usage_of(body: dict[str, Any]) -> Usage:
    """Chat/completions/embeddings usage, or the Responses API's (input/output tokens)."""
    usage = usage_object(body.get("usage"), "usage")
    if usage is None:
        return Usage()
    return Usage(
        token_count(usage.get("prompt_tokens", usage.get("input_tokens")), "prompt_tokens"),
        token_count(
            usage.get("completion_tokens", usage.get("output_tokens")), "completion_tokens"
        ),
    )


def check_results(body: dict[str, Any], operation: Operation, chunk: bool) -> None:
    """MalformedAnswer unless ``body`` holds its results as the client's SDK reads them.

    A stream chunk may leave its results out (some usage chunks do), and a choice of a
    chunk its ``delta`` (Azure's content filter chunks do); null is not leaving out.
    """
    check_list_of_results(body, *results_shape(operation, chunk), chunk)


def results_shape(operation: Operation, chunk: bool) -> tuple[str, str | None]:
    """The list an operation's answer (or stream chunk) holds its results in, and the key of
    each result that must be an object (a chat choice's ``message``, ``delta`` in a chunk)."""
    key = ("delta" if chunk else "message") if operation is Operation.CHAT else None
    return RESULTS[operation], key


def check_list_of_results(body: dict[str, Any], name: str, key: str | None, chunk: bool) -> None:
    """:func:`check_results` with the operation's shape looked up once (see
    :func:`results_shape`): this runs for every stream chunk."""
    if chunk and name not in body:
        return
    results = body.get(name)
    if type(results) is not list:
        raise MalformedAnswer(f'provider sent "{name}" that is not a list of objects')
    for result in results:  # a loop, not all(<genexpr>): this runs for every stream chunk
        if type(result) is not dict:
            raise MalformedAnswer(f'provider sent "{name}" that is not a list of objects')
        if key is not None and type(result.get(key)) is not dict and (key in result or not chunk):
            raise MalformedAnswer(f'provider sent a choice whose "{key}" is not an object')


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
            raise MalformedAnswer("provider answered with invalid JSON") from exc
        if not isinstance(parsed, dict):
            raise MalformedAnswer("provider answered with JSON that is not an object")
        check_results(parsed, call.operation, chunk=False)
        return raw, usage_of(parsed)

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        return OpenAIStream(call.client_wants_usage, call.operation)

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        return as_openai_error(status, body)


class OpenAIStream(StreamTranslator):
    def __init__(self, client_wants_usage: bool, operation: Operation = Operation.CHAT) -> None:
        self.usage = Usage()
        self.done = False
        self._forward_usage = client_wants_usage
        # Events relayed so far: a Responses stream numbers its events from 0, so this is the
        # sequence_number of an error event the sidecar appends (see frontends.responses).
        self.relayed = 0
        # Responses API events carry no list of results; chunks of the others do. Their shape
        # is looked up once per stream, not per chunk (an enum's hash is a Python call).
        self._results: tuple[str, str | None] | None = (
            results_shape(operation, chunk=True)
            if operation in (Operation.CHAT, Operation.COMPLETIONS)
            else None
        )

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        if self.done:
            return ()  # nothing may follow the end the client was already sent
        if data == DONE:
            self.done = True
            return (b"data: [DONE]\n\n",)
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedAnswer("provider sent an invalid stream chunk") from exc
        if type(chunk) is not dict:  # what orjson makes of an object; a list, str... is not
            raise MalformedAnswer("provider sent a stream chunk that is not an object")
        kind = chunk.get("type")
        if chunk.get("error") or event == "error" or kind in ("error", "response.failed"):
            raise UpstreamProtocol("provider sent an error event in the stream")
        if self._results is not None:
            results, choice_key = self._results
            check_list_of_results(chunk, results, choice_key, True)
        if kind in RESPONSE_END:
            response = chunk.get("response")
            if not isinstance(response, dict):
                raise MalformedAnswer(f"provider sent {kind} without a response object")
            self.usage = usage_of(response)
            self.done = True
        elif chunk.get("usage"):
            self.usage = usage_of(chunk)
            if not chunk.get("choices") and not self._forward_usage:
                return ()
        name = b"event: " + event.encode() + b"\n" if event else b""
        self.relayed += 1
        if b"\n" in data:  # keep the SSE framing of a multi-line data field
            data = data.replace(b"\n", b"\ndata: ")
        return (name + b"data: " + data + b"\n\n",)

    def feed_all(self, events: list[tuple[str | None, bytes]], out: list[bytes]) -> None:
        """:meth:`feed` of each event, in one pass for the run of plain chunks that makes up
        nearly all of a chat stream (no event name, one line of data, no usage, no end): each
        is parsed and checked as :meth:`feed` would, and the run goes out as one piece. Any
        other event goes through :meth:`feed` itself, after the run before it."""
        results = self._results
        if results is None or self.done:  # Responses events all carry a type: feed() it is
            super().feed_all(events, out)
            return
        name, key = results
        loads = orjson.loads
        run: list[bytes] = []
        try:
            for event, data in events:
                if event is None and data != DONE and b"\n" not in data:
                    try:
                        chunk = loads(data)
                    except orjson.JSONDecodeError:
                        chunk = None  # feed() raises the error, after the run
                    if (
                        type(chunk) is dict
                        and "type" not in chunk
                        and not chunk.get("error")
                        and not chunk.get("usage")
                    ):
                        check_list_of_results(chunk, name, key, True)
                        run.append(data)
                        continue
                if run:
                    self._flush_run(run, out)
                    run = []
                out.extend(self.feed(event, data))
                if self.done:
                    return  # feed() ignores whatever follows the end
        finally:
            if run:
                self._flush_run(run, out)

    def _flush_run(self, run: list[bytes], out: list[bytes]) -> None:
        self.relayed += len(run)
        out.append(b"data: " + b"\n\ndata: ".join(run) + b"\n\n")
