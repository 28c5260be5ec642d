"""Which fields of a request hold text the provider will read, one table per client API, and
how to write new values into a copy of the request without touching the original.

A field is written as a path: ``messages.*.content`` is the ``content`` of every message,
``*`` stepping into each element of a list and a name into an object's key; ``**`` is every
string below (an Anthropic ``tool_use.input`` is any JSON value); a step ending in ``@json``
is a string holding JSON (OpenAI tool-call ``arguments``), decoded so that its strings are
scanned as values and encoded again when one of them changes (a string that is not valid
JSON is scanned as text). A path applies where the data has that shape and is silently
skipped elsewhere, so ``content`` as a string and ``content`` as a list of parts are two
rows of the same table.

The same tables, applied to answers, tell :mod:`.restore` where placeholders may come back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

Path = tuple[str | int, ...]
JSON_STEP = "@json"

# Client operation (aiguillage.sidecar.adapters.base.Operation values) -> fields scanned.
REQUEST_FIELDS: dict[str, tuple[str, ...]] = {
    "chat.completions": (
        "messages.*.content",  # system, developer, user, assistant and tool messages
        "messages.*.content.*.text",  # text parts
        "messages.*.name",
        "messages.*.refusal",
        "messages.*.tool_calls.*.function.arguments@json.**",
        "messages.*.function_call.arguments@json.**",
    ),
    "completions": ("prompt", "prompt.*", "suffix"),
    "embeddings": ("input", "input.*"),
    "responses": (
        "instructions",
        "input",
        "input.*.content",  # message items with a string content
        "input.*.content.*.text",  # input_text / output_text parts
        "input.*.arguments@json.**",  # function_call items
        "input.*.output",  # function_call_output
        "input.*.output.*.text",
    ),
    "messages": (
        "system",
        "system.*.text",
        "messages.*.content",
        "messages.*.content.*.text",  # text blocks
        "messages.*.content.*.input.**",  # tool_use blocks
        "messages.*.content.*.content",  # tool_result with a string content
        "messages.*.content.*.content.*.text",  # tool_result blocks
    ),
}
# Anthropic's token counting sends the provider a Messages body: the same text leaves the pod.
REQUEST_FIELDS["messages.count_tokens"] = REQUEST_FIELDS["messages"]

# Client operation -> fields of a whole (non-streamed) answer that may carry placeholders.
ANSWER_FIELDS: dict[str, tuple[str, ...]] = {
    "chat.completions": (
        "choices.*.message.content",
        "choices.*.message.refusal",
        "choices.*.message.tool_calls.*.function.arguments@json.**",
        "choices.*.message.function_call.arguments@json.**",
    ),
    "completions": ("choices.*.text",),
    "embeddings": (),
    "responses": (
        "instructions",  # a response object repeats the request's instructions
        "output.*.content.*.text",
        "output.*.content.*.refusal",
        "output.*.arguments@json.**",
    ),
    "messages": ("content.*.text", "content.*.input.**"),
    "messages.count_tokens": (),  # a number of tokens
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One string of a request: where it is and what it says.

    ``path`` leads to it from the body; when it is inside a JSON-encoded string, ``path``
    holds the step ``@json`` after that string's own path and goes on inside the decoded
    value."""

    path: Path
    text: str


@functools.cache
def steps(spec: str) -> tuple[str, ...]:
    return tuple(spec.split("."))


def strings(body: Any, specs: tuple[str, ...]) -> Iterator[Slot]:
    """Every string of ``body`` that one of ``specs`` names, each once, in table order."""
    seen: set[Path] = set()
    for spec in specs:
        for slot in _walk(body, steps(spec), ()):
            if slot.path not in seen:
                seen.add(slot.path)
                yield slot


def _walk(node: Any, rest: tuple[str, ...], path: Path) -> Iterator[Slot]:
    if not rest:
        if isinstance(node, str):
            yield Slot(path, node)
        return
    step, tail = rest[0], rest[1:]
    if step == "**":
        yield from _every_string(node, path)
    elif step == "*":
        if isinstance(node, list):
            for i, item in enumerate(node):
                yield from _walk(item, tail, (*path, i))
    elif step.endswith(JSON_STEP):
        key = step[: -len(JSON_STEP)]
        value = node.get(key) if isinstance(node, dict) else None
        if not isinstance(value, str):
            return
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            yield Slot((*path, key), value)
            return
        yield from _walk(decoded, tail, (*path, key, JSON_STEP))
    elif isinstance(node, dict) and step in node:
        yield from _walk(node[step], tail, (*path, step))


def _every_string(node: Any, path: Path) -> Iterator[Slot]:
    if isinstance(node, str):
        yield Slot(path, node)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _every_string(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _every_string(value, (*path, i))


def all_strings(node: Any) -> Iterator[str]:
    """Every string value in ``node``, wherever it is (to keep placeholders unique)."""
    for slot in _every_string(node, ()):
        yield slot.text


def with_values(body: Any, edits: dict[Path, str]) -> Any:
    """A copy of ``body`` where each path of ``edits`` holds its new string.

    Only the objects and lists on the way to an edited string are copied; everything else
    is shared with ``body``, which is never modified. A path through ``@json`` re-encodes
    that string from its decoded value with the edits inside applied."""
    tree: dict[Any, Any] = {}
    for path, value in edits.items():
        node = tree
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = _Leaf(value)
    return _rebuild(body, tree)


@dataclass(frozen=True, slots=True)
class _Leaf:
    value: str


def _rebuild(node: Any, tree: dict[Any, Any]) -> Any:
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    for step, sub in tree.items():
        if isinstance(sub, _Leaf):
            copy[step] = sub.value
        elif JSON_STEP in sub:
            inner = sub[JSON_STEP]
            # The decoded value is the string itself ('"text"'), or holds the edited strings.
            decoded = (
                inner.value
                if isinstance(inner, _Leaf)
                else _rebuild(orjson.loads(node[step]), inner)
            )
            copy[step] = orjson.dumps(decoded).decode()
        else:
            copy[step] = _rebuild(node[step], sub)
    return copy
