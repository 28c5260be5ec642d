"""Responses API answers from chat completions: the ``response`` object and its event stream.

Used by :mod:`.responses` for targets that do not speak the Responses API.

Answer: the assistant's text becomes a ``message`` output item with one ``output_text``
part (a refusal, a ``refusal`` part), each tool call a ``function_call`` item (its
``call_id`` is the chat tool call's id, which the client sends back in
``function_call_output``). A ``length`` finish makes the response ``incomplete`` with
reason ``max_output_tokens``, a ``content_filter`` finish reason ``content_filter``.
Usage: ``prompt_tokens`` → ``input_tokens`` (cached ones in ``input_tokens_details``),
``completion_tokens`` → ``output_tokens`` (reasoning ones in ``output_tokens_details``).
The request's settings are echoed as OpenAI echoes them (``store`` is false: nothing is
stored).

Stream (:class:`ResponseEvents`): the events the openai SDK and the Agents SDK read, in
OpenAI's order, each with its ``sequence_number``: ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, for text
``response.content_part.added``, ``response.output_text.delta``…,
``response.output_text.done``, ``response.content_part.done``, for a tool call
``response.function_call_arguments.delta``…, ``response.function_call_arguments.done``,
then ``response.output_item.done``; and last ``response.completed`` (or
``response.incomplete``) carrying the whole response with its usage. Nothing is written
before the first content, so that a failure until then can still fail over.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

import orjson

from aiguillage.sidecar.adapters.base import StreamTranslator
from aiguillage.sidecar.adapters.openai_chat import load_object
from aiguillage.sidecar.errors import UpstreamProtocol
from aiguillage.sidecar.frontends.base import chat_answer, first_choice, sse_payloads

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_response_id() -> str:
    return "resp_" + uuid4().hex


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid4().hex}"


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def _usage(usage: Any) -> dict[str, Any]:
    """The Responses usage object of an OpenAI chat usage object."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
    reasoning = (
        completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else 0
    )
    return {
        "input_tokens": prompt,
        # Chat usage does not tell cache writes apart: none are reported.
        "input_tokens_details": {"cached_tokens": int(cached or 0), "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning or 0)},
        "total_tokens": prompt + completion,
    }


def response_object(
    request: dict[str, Any],
    response_id: str,
    created: float,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object, echoing the request's settings as OpenAI does."""
    reason = INCOMPLETE.get(finish_reason or "")
    if status == "completed" and reason is not None:
        status = "incomplete"
    text = request.get("text")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": None,
        "store": False,
        "temperature": request.get("temperature"),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": [echo_tool(tool) for tool in request.get("tools") or ()],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        # Known only at the end: left out of the in-progress snapshots, as the spec wants.
        **({"usage": usage} if usage is not None else {}),
        **({"user": request["user"]} if isinstance(request.get("user"), str) else {}),
    }


def echo_tool(tool: Any) -> Any:
    """A function tool as the answer echoes it: every field, null where the client gave none
    (its ``strict`` included: the sidecar enforces nothing the client did not ask for)."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def response_body(request: dict[str, Any], raw: bytes) -> bytes:
    """A Responses API ``response`` from an OpenAI ``chat.completion`` body."""
    body, choice, message = chat_answer(raw)
    output: list[dict[str, Any]] = []
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(text, str) and text:
        output.append(_message_item(new_item_id("msg"), [_text_part(text)], "completed"))
    elif isinstance(refusal, str) and refusal:
        output.append(_message_item(new_item_id("msg"), [_refusal_part(refusal)], "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(call, dict) and isinstance(function, dict):
            arguments = function.get("arguments")
            output.append(
                _function_item(
                    new_item_id("fc"),
                    str(call.get("id") or new_item_id("call")),
                    str(function.get("name") or ""),
                    arguments if isinstance(arguments, str) else "{}",
                    "completed",
                )
            )
    created = body.get("created")
    return orjson.dumps(
        response_object(
            request,
            new_response_id(),
            created if isinstance(created, int | float) else int(time.time()),
            str(body.get("model") or request.get("model") or ""),
            "completed",
            output,
            _usage(body.get("usage")),
            choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
        )
    )


def _message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _function_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def error_event(message: str, code: str, sequence_number: int) -> bytes:
    """The Responses API's ``error`` event, ending a stream broken after its first byte."""
    payload = {
        "type": "error",
        "code": code,
        "message": message,
        "param": None,
        "sequence_number": sequence_number,
    }
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Item:
    """One output item being streamed."""

    __slots__ = ("call_id", "id", "kind", "name", "parts", "text")

    def __init__(self, kind: str, item_id: str, call_id: str = "", name: str = "") -> None:
        self.kind = kind  # "output_text", "refusal" (message items) or "function_call"
        self.id = item_id
        self.call_id = call_id
        self.name = name
        self.text: list[str] = []

    def done(self) -> dict[str, Any]:
        text = "".join(self.text)
        if self.kind == "function_call":
            return _function_item(self.id, self.call_id, self.name, text, "completed")
        part = _text_part(text) if self.kind == "output_text" else _refusal_part(text)
        return _message_item(self.id, [part], "completed")


class ResponseEvents(StreamTranslator):
    """OpenAI chunks (from the wrapped translator) -> Responses API events."""

    def __init__(self, canonical: StreamTranslator, request: dict[str, Any]) -> None:
        self.usage = canonical.usage
        self.done = False
        self._inner = canonical
        self._request = request
        self._id = new_response_id()
        self._created = int(time.time())
        self._model = str(request.get("model") or "")
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}  # chat tool call index -> its item
        self._finish: str | None = None
        self._usage: Any = None

    @property
    def sequence_number(self) -> int:
        """The sequence number of the next event."""
        return self._sequence

    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]:
        out: list[bytes] = []
        for chunk in self._inner.feed(event, data):
            for payload in sse_payloads(chunk):
                out.extend(self._chunk(payload))
        self.usage = self._inner.usage
        return out

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(self, status: str) -> dict[str, Any]:
        done = status != "in_progress"
        return response_object(
            self._request,
            self._id,
            self._created,
            self._model,
            status,
            [item.done() for item in self._items] if done else [],
            _usage(self._usage) if done else None,
            self._finish if done else None,
        )

    def _chunk(self, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            return self._end()
        chunk = load_object(data, "stream chunk")
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choice = first_choice(chunk)
        if choice is None:
            return []
        out: list[bytes] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key, kind in (("content", "output_text"), ("refusal", "refusal")):
                if isinstance(delta.get(key), str) and delta[key]:
                    out.extend(self._text(kind, delta[key]))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.extend(self._tool(call))
        if isinstance(choice.get("finish_reason"), str):
            self._finish = choice["finish_reason"]
        return out

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self._response("in_progress")),
            self._event("response.in_progress", response=self._response("in_progress")),
        ]

    def _add(self, item: _Item) -> list[bytes]:
        out = self._start() + self._close()
        self._items.append(item)
        self._open = item
        index = len(self._items) - 1
        if item.kind == "function_call":
            added = _function_item(item.id, item.call_id, item.name, "", "in_progress")
            return [*out, self._event("response.output_item.added", output_index=index, item=added)]
        added = _message_item(item.id, [], "in_progress")
        part = _text_part("") if item.kind == "output_text" else _refusal_part("")
        return [
            *out,
            self._event("response.output_item.added", output_index=index, item=added),
            self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self._items.index(item)
        where = {"item_id": item.id, "output_index": index}
        text = "".join(item.text)
        out = []
        if item.kind == "function_call":
            out.append(
                self._event(
                    "response.function_call_arguments.done", **where, name=item.name, arguments=text
                )
            )
        else:
            part = where | {"content_index": 0}
            if item.kind == "output_text":
                out.append(self._event("response.output_text.done", **part, text=text, logprobs=[]))
                done_part = _text_part(text)
            else:
                out.append(self._event("response.refusal.done", **part, refusal=text))
                done_part = _refusal_part(text)
            out.append(self._event("response.content_part.done", **part, part=done_part))
        out.append(self._event("response.output_item.done", output_index=index, item=item.done()))
        return out

    def _text(self, kind: str, text: str) -> list[bytes]:
        item = self._open
        out: list[bytes] = []
        if item is None or item.kind != kind:
            item = _Item(kind, new_item_id("msg"))
            out = self._add(item)
        item.text.append(text)
        where = {"item_id": item.id, "output_index": len(self._items) - 1, "content_index": 0}
        if kind == "output_text":
            out.append(self._event("response.output_text.delta", **where, delta=text, logprobs=[]))
        else:
            out.append(self._event("response.refusal.delta", **where, delta=text))
        return out

    def _tool(self, call: dict[str, Any]) -> list[bytes]:
        index = call["index"] if isinstance(call.get("index"), int) else 0
        function = call["function"] if isinstance(call.get("function"), dict) else {}
        out: list[bytes] = []
        item = self._calls.get(index)
        if item is None:
            call_id = str(call.get("id") or new_item_id("call"))
            item = _Item(
                "function_call", new_item_id("fc"), call_id, str(function.get("name") or "")
            )
            self._calls[index] = item
            out = self._add(item)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            if item is not self._open:
                raise UpstreamProtocol("provider interleaved the arguments of two tool calls")
            item.text.append(arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=len(self._items) - 1,
                    delta=arguments,
                )
            )
        return out

    def _end(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = [*self._start(), *self._close()]
        final = self._response("completed")
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=final))
        return out
