"""OpenAI's Responses API for clients: ``POST /v1/responses`` on every provider format.

The Responses API is what the OpenAI Agents SDK's default model and newer openai SDK code
call. A target whose adapter speaks it natively (:mod:`aiguillage.sidecar.adapters.openai`)
gets the body as it is; any other target (Azure OpenAI deployments, Anthropic, Gemini,
Vertex AI, Bedrock) is served through chat completions, translated here both ways (the
answer and its event stream in :mod:`.responses_answer`).

Request → chat completions: ``instructions`` becomes the first system message; ``input`` (a
string, or a list of items) becomes messages: ``message`` items (roles user, assistant,
system, developer; ``input_text``/``output_text``/``refusal`` parts as text, ``input_image``
with an image URL as an image part), ``function_call`` items become the assistant's
``tool_calls`` (consecutive ones in one assistant message, as chat completions wants
parallel calls), ``function_call_output`` items become ``tool`` messages; ``reasoning``
items are dropped (another model's reasoning, encrypted or summarised, means nothing to the
model that gets the chat request). Function tools become chat function tools (``strict``
kept), ``tool_choice`` and ``parallel_tool_calls`` carry over, ``text.format``
``json_object``/``json_schema`` becomes ``response_format``, ``max_output_tokens`` becomes
``max_completion_tokens``, ``temperature``, ``top_p`` and ``user`` carry over.

Refused with a 400 naming the field, because the answer would lack what was asked for:
``previous_response_id`` and ``conversation`` (the sidecar stores no conversation: send the
whole history in ``input``), ``prompt`` templates, ``background``, ``item_reference``
items, file inputs, and built-in tools (web search, file search, code interpreter, computer
use, MCP...), which only OpenAI runs. Dropped as hints: ``reasoning`` (effort and summary
settings), ``text.verbosity``, ``include``, ``store`` (answers say ``store: false``),
``truncation``, ``service_tier``, ``safety_identifier``, ``prompt_cache_key``,
``max_tool_calls`` (it limits built-in tool calls, which are refused anyway); ``metadata``
is echoed in the answer only.

Errors keep OpenAI's body shape. A stream that breaks after its first byte ends with the
Responses API's own ``error`` event (``type``, ``code``, ``message``, ``param``,
``sequence_number``): the Agents SDK raises on it, and the openai SDK yields it as a
``ResponseErrorEvent`` (its raw stream raises only on an ``error`` key, which no Responses
event has).
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiguillage.sidecar.adapters.base import Call, Operation, StreamTranslator
from aiguillage.sidecar.adapters.openai import OpenAIStream
from aiguillage.sidecar.adapters.openai_chat import UnsupportedRequest
from aiguillage.sidecar.frontends.base import TranslatingFrontend
from aiguillage.sidecar.frontends.responses_answer import (
    ResponseEvents,
    error_event,
    response_body,
)

# Request fields whose effect a chat completion cannot give: refused, not dropped.
REFUSED_FIELDS = {
    "previous_response_id": "the sidecar stores no responses: send the whole conversation in input",
    "conversation": "the sidecar stores no conversations: send the whole conversation in input",
    "prompt": "prompt templates are stored by OpenAI",
    "background": "background responses are stored by OpenAI",
    "top_logprobs": "log probabilities are not carried over",
}
_ELSEWHERE = "when the route's target does not speak the Responses API"
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


class ResponsesFrontend(TranslatingFrontend):
    operation: ClassVar[Operation] = Operation.RESPONSES

    def stream_error(self, message: str, code: str, stream: StreamTranslator | None) -> bytes:
        # The error event numbers itself after the events the client already has.
        if isinstance(stream, ResponseEvents):
            sequence = stream.sequence_number
        elif isinstance(stream, OpenAIStream):  # a native Responses stream, relayed
            sequence = stream.relayed
        else:
            sequence = 0
        return error_event(message, code, sequence)

    def to_canonical(self, call: Call) -> Call:
        return Call(Operation.CHAT, chat_body(call.body), call.stream, client_wants_usage=True)

    def answer(self, call: Call, body: bytes) -> bytes:
        return response_body(call.body, body)

    def stream(self, call: Call, canonical: StreamTranslator) -> StreamTranslator:
        return ResponseEvents(canonical, call.body)

    def error_body(self, status: int, body: bytes) -> bytes:
        return body  # canonical errors are OpenAI's already, as Responses errors are


RESPONSES = ResponsesFrontend()


# -- request ---------------------------------------------------------------------------------


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat.completions body asking for what a Responses API body asks for."""
    for name, why in REFUSED_FIELDS.items():
        if body.get(name) not in (None, False, [], {}, ""):
            raise UnsupportedRequest(f'"{name}" is not supported {_ELSEWHERE}: {why}')
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise UnsupportedRequest('"instructions" must be a string')
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list) and items:
        for i, item in enumerate(items):
            _item(messages, item, f"input[{i}]")
    else:
        raise UnsupportedRequest('"input" must be a string or a non-empty list of items')
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if body.get("parallel_tool_calls") is False:
            out["parallel_tool_calls"] = False
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    for name, to in (
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ):
        if body.get(name) is not None:
            out[to] = body[name]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _item(messages: list[dict[str, Any]], item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise UnsupportedRequest(f"{where} must be an object")
    kind = item.get("type", "message")
    if kind == "message":
        messages.append(_message(item, where))
    elif kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise UnsupportedRequest(f"{where}: a function_call needs a call_id and a name")
        arguments = item.get("arguments")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments or "{}"},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            # Calls made in one turn (after its text, if any) form one assistant message.
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise UnsupportedRequest(f"{where}: a function_call_output needs a call_id")
        output = _output_text(item.get("output"), f"{where}.output")
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    elif kind == "reasoning":
        return  # another model's reasoning: nothing the target's model can use
    else:
        raise UnsupportedRequest(f'{where}: items of type "{kind}" are not supported {_ELSEWHERE}')


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise UnsupportedRequest(f"{where}.role must be user, assistant, system or developer")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise UnsupportedRequest(f"{where}.content must be a string or a list of parts")
    if role != "user":
        return {"role": role, "content": _texts(content, f"{where}.content")}
    parts: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        at = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part, dict):
            url = part.get("image_url")
            if not isinstance(url, str):
                raise UnsupportedRequest(
                    f"{at}: images need an image_url (file_id is stored by OpenAI)"
                )
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise UnsupportedRequest(f'{at}: parts of type "{kind}" are not supported {_ELSEWHERE}')
    return {"role": "user", "content": parts}


def _texts(content: list[Any], where: str) -> str:
    texts = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part, dict) and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise UnsupportedRequest(
                f'{where}[{k}]: parts of type "{kind}" are not supported {_ELSEWHERE}'
            )
    return "".join(texts)


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _texts(output, where)
    raise UnsupportedRequest(f"{where} must be a string or a list of text parts")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise UnsupportedRequest('"tools" must be a list')
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(tool, dict):
            raise UnsupportedRequest(
                f'tools[{i}]: tools of type "{kind}" are not supported {_ELSEWHERE} '
                "(only function tools are)"
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise UnsupportedRequest(f"tools[{i}].name must be a non-empty string")
        function: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise UnsupportedRequest(
        f'"tool_choice" must be auto, none, required or a function {_ELSEWHERE}'
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        spec = {k: fmt[k] for k in ("name", "schema", "description", "strict") if k in fmt}
        spec.setdefault("name", "output")
        return {"type": "json_schema", "json_schema": spec}
    raise UnsupportedRequest(
        '"text.format" must be of type text, json_object or json_schema (with a schema)'
    )
