"""Anthropic's token counting for clients: ``POST /v1/messages/count_tokens`` on the sidecar.

Claude Code and the ``anthropic`` SDK (``messages.count_tokens``) ask how many input tokens
a Messages request would take. The route is chosen by ``model`` like any request, residency
applies the same way (the prompt is sent to whoever counts it), and:

- a target speaking the Anthropic API counts exactly: the body (and the client's
  ``anthropic-beta``/``anthropic-version`` headers) pass through to its
  ``/v1/messages/count_tokens``; counting is free, so no tokens or cost are accounted;
- when no target of the route can count (none speaks Anthropic's API), the sidecar answers
  an **estimate** itself (:func:`estimate`), sends nothing anywhere, and says so with the
  header ``x-aiguillage-answered-by: sidecar`` (audit outcome ``answered_by_sidecar``);
- when Anthropic targets exist but fail, the client gets the failure (a 502, or a 429/529
  when throttled), not an estimate that would hide it.

The estimate is about four characters of text per token, counted over the system prompt,
message text, tool calls and results and the tool definitions, plus 1,600 tokens per image
(the most Anthropic charges for an image it does not resize). Good enough for what clients
use it for (deciding when to trim a conversation); not a bill.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import orjson

from aiguillage.sidecar.adapters.base import Call, Operation
from aiguillage.sidecar.frontends.anthropic import AnthropicFrontend
from aiguillage.sidecar.frontends.base import Adapters

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600


class CountTokensFrontend(AnthropicFrontend):
    """Anthropic errors, native adapters only, and the estimate when none can count."""

    operation: ClassVar[Operation] = Operation.COUNT_TOKENS
    streams: ClassVar[bool] = False

    def adapters(self, call: Call, adapters: Adapters) -> Adapters:
        # Counting through another API would not count the same tokenizer's tokens.
        return adapters

    def unserved(self, call: Call) -> bytes | None:
        return orjson.dumps({"input_tokens": estimate(call.body)})


COUNT_TOKENS = CountTokensFrontend()


def estimate(body: dict[str, Any]) -> int:
    """Estimated input tokens of a Messages request body (see the module docstring)."""
    chars = 0
    images = 0

    def add(node: Any) -> None:
        nonlocal chars, images
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, list):
            for item in node:
                add(item)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind == "image":
                images += 1
            elif kind == "text":
                add(node.get("text"))
            elif kind == "tool_use":
                chars += len(str(node.get("name", ""))) + len(orjson.dumps(node.get("input")))
            elif kind == "tool_result" or "content" in node:
                add(node.get("content"))
            else:  # thinking, documents and blocks newer than this code: their JSON
                chars += len(orjson.dumps(node))

    add(body.get("system"))
    add(body.get("messages"))
    for tool in body.get("tools") or ():
        chars += len(orjson.dumps(tool))
    return math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS
