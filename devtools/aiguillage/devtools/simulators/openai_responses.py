"""The OpenAI Responses API of the simulated OpenAI provider (``POST /v1/responses``).

Kept apart from :mod:`.openai` because the Responses API has its own shapes: an ``input``
list instead of messages, and a stream of typed events (``response.created`` ...
``response.completed``) with no ``[DONE]``. :class:`.openai.OpenAISimulator` routes the
endpoint here; the server machinery (answers, faults, streaming) is the simulator's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .answers import count_words, forced_function, tool_name
from .base import Call
from .faults import ApiError, Fault
from .streaming import named_sse

if TYPE_CHECKING:
    from .openai import OpenAISimulator


def responses_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    items = body.get("input")
    if isinstance(items, list) and items:
        last = items[-1]
        if isinstance(last, dict) and last.get("type") == "function_call_output":
            return None
    return forced_function(choice) or next(
        (name for name in map(tool_name, tools) if name is not None), None
    )


def _echo_tool(tool: Any) -> Any:
    """A function tool as OpenAI echoes it: its fields all there (``strict`` defaults to true)."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


async def respond(
    sim: OpenAISimulator, call: Call, body: dict[str, Any], model: str
) -> web.StreamResponse:
    """Answer one Responses API call (whole or as its typed event stream)."""
    if body.get("input") is None:
        raise ApiError(400, "Missing required parameter: 'input'.", param="input", error_code="")
    prompt = max(
        1,
        count_words(body.get("input"), "input")
        + count_words(body.get("instructions"), "instructions"),
    )
    tool = responses_tool(body)
    arguments = sim.tool_arguments(body.get("tools"), tool)
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    asked = [body.get("instructions"), body.get("input")]
    answer = (
        sim.json_answer(fmt, asked)
        or sim.prompted_json(asked)
        or sim.answer(
            body.get("max_output_tokens"),
            prompt={"instructions": body.get("instructions"), "input": body.get("input")},
        )
    )
    seq = sim.new_id()
    rid = f"resp_sim{seq:010d}"
    created = int(time.time())
    completion = 2 if tool else answer.tokens
    incomplete = answer.truncated and not tool
    item_id = f"fc_sim{seq:010d}" if tool else f"msg_sim{seq:010d}"

    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(done: bool) -> dict[str, Any]:
        status = "completed" if done else "in_progress"
        if tool:
            return {
                "id": item_id,
                "type": "function_call",
                "status": status,
                "call_id": f"call_sim{seq:010d}",
                "name": tool,
                "arguments": arguments if done else "",
            }
        return {
            "id": item_id,
            "type": "message",
            "status": ("incomplete" if incomplete else "completed") if done else status,
            "role": "assistant",
            "content": [text_part(answer.text)] if done else [],
        }

    def response(done: bool) -> dict[str, Any]:
        status = ("incomplete" if incomplete else "completed") if done else "in_progress"
        out: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete and done else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": [item(True)] if done else [],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": [_echo_tool(t) for t in body.get("tools") or ()],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "metadata": body.get("metadata") or {},
        }
        if done:
            out["usage"] = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
        return out

    if not body.get("stream"):
        return await sim.send_json(call, response(True))

    counter = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return named_sse(kind, {"type": kind, "sequence_number": next(counter), **fields})

    where = {"output_index": 0, "item_id": item_id}
    preamble = [
        event("response.created", response=response(False)),
        event("response.in_progress", response=response(False)),
        event("response.output_item.added", output_index=0, item=item(False)),
    ]
    if tool:
        preamble_extra: list[bytes] = []
        chunks = [event("response.function_call_arguments.delta", **where, delta=arguments)]
        closing = [
            event("response.function_call_arguments.done", **where, name=tool, arguments=arguments)
        ]
    else:
        part = {"content_index": 0, **where}
        preamble_extra = [event("response.content_part.added", **part, part=text_part(""))]
        chunks = [
            event("response.output_text.delta", **part, delta=piece, logprobs=[])
            for piece in answer.pieces
        ]
        closing = [
            event("response.output_text.done", **part, text=answer.text, logprobs=[]),
            event("response.content_part.done", **part, part=text_part(answer.text)),
        ]
    closing.append(event("response.output_item.done", output_index=0, item=item(True)))
    final_kind = "response.incomplete" if incomplete else "response.completed"
    closing.append(event(final_kind, response=response(True)))

    def error_event(fault: Fault) -> bytes:
        err = ApiError.from_fault(fault, sim.in_stream_error_status)
        body_err = sim.error_body_for_stream(err)["error"]
        return named_sse(
            "error",
            {
                "type": "error",
                "code": body_err["code"] or body_err["type"],
                "message": body_err["message"],
                "param": None,
                "sequence_number": len(preamble) + len(preamble_extra) + fault.after_chunks,
            },
        )

    return await sim.stream(
        call,
        preamble=preamble + preamble_extra,
        chunks=chunks,
        epilogue=closing,
        error_event=error_event,
        garbled=b"event: response.output_text.delta\n"
        b'data: {"type":"response.output_text.delta","delta":\n\n',
    )
