"""Structured answers of the simulated models: tool arguments and JSON that fit a schema.

A real model asked for JSON (a response schema, JSON mode, a tool's input schema) answers
with a value of that shape; frameworks such as LangChain's ``with_structured_output``,
instructor or pydantic-ai then validate it. The simulators do the same, deterministically:

- :func:`instance` builds a value that satisfies a JSON Schema (``$ref``/``$defs``,
  ``anyOf``/``oneOf``/``allOf``, ``enum``/``const``, objects with their properties, arrays
  of one item, strings, numbers within their bounds...). Strings say hello from the
  simulator, so tests can still tell which provider answered;
- :func:`schema_in_text` finds a JSON Schema a prompt spells out (instructor's and
  pydantic-ai's JSON modes put the model's schema in the system prompt), so that a JSON-mode
  answer can follow it as a model would; without one, a JSON-mode answer is
  ``{"answer": "<the reply text>"}``.

Each provider module decides where its wire format carries the schema.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["arguments", "instance", "json_object_text", "schema_in_text", "strings_in"]

_FORMATS: Final = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "simulator@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_MAX_DEPTH: Final = 12


def instance(schema: Any, text: str, root: Any = None, depth: int = 0) -> Any:
    """A value satisfying ``schema``; ``text`` fills the strings."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return text
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key) if isinstance(target, dict) else None
        return instance(target, text, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if not _is_null(o)), options[0])
            return instance(chosen, text, root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = instance(part, text, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: instance(sub, text, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        return [instance(schema.get("items"), text, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    value = text
    minimum = schema.get("minLength")
    if isinstance(minimum, int) and len(value) < minimum:
        value += "." * (minimum - len(value))
    maximum = schema.get("maxLength")
    if isinstance(maximum, int):
        value = value[:maximum]
    return value


def arguments(schema: Any, text: str) -> dict[str, Any]:
    """A tool call's arguments (always an object) for the tool's parameters ``schema``."""
    value = instance(schema, text) if isinstance(schema, dict) and schema else {}
    return value if isinstance(value, dict) else {}


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _number(schema: dict[str, Any], kind: str) -> int | float:
    value: float = 1
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + 1
    if isinstance(low, int | float):
        value = max(value, low)
    if isinstance(high, int | float):
        value = min(value, high)
    return int(value) if kind == "integer" else float(value)


def schema_in_text(texts: list[str]) -> dict[str, Any] | None:
    """The first JSON object that looks like a JSON Schema (has ``properties``) in ``texts``."""
    decoder = json.JSONDecoder()
    for text in texts:
        start = text.find("{")
        while start != -1:
            try:
                value, _end = decoder.raw_decode(text, start)
            except ValueError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("properties"), dict):
                return value
            start = text.find("{", start + 1)
    return None


def json_object_text(texts: list[str], reply: str) -> str:
    """A JSON-mode answer: an instance of the schema the prompt spells out, if any."""
    schema = schema_in_text(texts)
    value = instance(schema, reply) if schema is not None else {"answer": reply}
    return json.dumps(value)


def prefill_continuation(messages: list[Any], system: Any, reply: str) -> str | None:
    """The rest of a JSON object when the conversation ends with an assistant ``{`` prefill."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None
    if not "".join(strings_in(last.get("content"))).rstrip().endswith("{"):
        return None
    return json_object_text(strings_in([system, messages]), reply)[1:]


def strings_in(node: Any) -> list[str]:
    """Every string in a JSON request body (where a prompt may spell out a schema)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings_in(value)]
    return []
