"""OpenAI's JSON mode (``response_format: {"type": "json_object"}``) for providers without it.

Anthropic Messages and Bedrock Converse constrain output only to a given JSON schema (which
their adapters map ``json_schema`` to), not to "any JSON object". LangChain's JSON mode,
instructor's JSON modes, pydantic-ai's prompted output and LiteLLM all send ``json_object``,
so the adapters of those providers emulate it the way their vendors advise:

- an instruction appended to the system prompt (:data:`INSTRUCTION`) says to answer with one
  JSON object and nothing else;
- the assistant's answer is prefilled with ``{`` (a last assistant message both APIs
  continue), so the model cannot open with prose; the client's answer gets the ``{`` back.
  Not when the model may call tools (a prefill would stop it from calling them) nor when the
  conversation already ends with an assistant message (the client's own prefill);
- the answer is checked: text that does not parse as a JSON object is the provider failing
  the request (:class:`~aiguillage.sidecar.errors.UpstreamProtocol`): it fails over before
  the client's first byte, and a stream already started ends with an error event. An answer
  cut by ``max_tokens`` or made of tool calls is passed as it is, as OpenAI does.

:func:`json_object_mode` decides from the client's body alone, so the request builder and
the answer readers of one adapter always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from aiguillage.sidecar.errors import UpstreamProtocol

INSTRUCTION = (
    "Answer with a single JSON object and nothing else: no text before or after it, no code fences."
)
PREFILL = "{"


@dataclass(frozen=True, slots=True)
class JsonMode:
    """How one ``json_object`` request is emulated."""

    prefill: bool  # the request ends with an assistant "{" the answer continues


def json_object_mode(body: dict[str, Any]) -> JsonMode | None:
    """The emulation of the client's chat body, or None when it does not ask for JSON mode."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_object":
        return None
    may_call_tools = bool(body.get("tools")) and body.get("tool_choice") != "none"
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    ends_with_assistant = isinstance(last, dict) and last.get("role") == "assistant"
    return JsonMode(prefill=not may_call_tools and not ends_with_assistant)


def check_json_object(text: str | None, finish_reason: str, has_tool_calls: bool) -> None:
    """Raise UpstreamProtocol unless ``text`` is a JSON object (or need not be one)."""
    if has_tool_calls or finish_reason in ("length", "content_filter"):
        return
    try:
        parsed = orjson.loads(text or "")
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamProtocol("provider answered JSON mode with text that is not a JSON object")


class JsonTextStream:
    """The text of one streamed JSON-mode answer: restores the prefill, checks the end."""

    __slots__ = ("_mode", "_parts", "_started")

    def __init__(self, mode: JsonMode) -> None:
        self._mode = mode
        self._parts: list[str] = []
        self._started = False

    def text(self, delta: str) -> str:
        """The client's text for one provider text delta (the first gets the prefill)."""
        if not self._started:
            self._started = True
            if self._mode.prefill:
                delta = PREFILL + delta
        self._parts.append(delta)
        return delta

    def finish(self, finish_reason: str, has_tool_calls: bool) -> None:
        text = "".join(self._parts)
        if self._mode.prefill and not self._started:
            text = PREFILL
        check_json_object(text, finish_reason, has_tool_calls)


def answer_text(mode: JsonMode, text: str | None, has_tool_calls: bool) -> str | None:
    """The client's text of a whole JSON-mode answer (the prefill restored)."""
    if mode.prefill and not has_tool_calls:
        return PREFILL + (text or "")
    return text
