"""The deterministic content of simulated answers: reply text, stream pieces, token counts.

Every simulator answers with the same text whatever the question, so that tests can assert on
it: ``"Hello from <name>! This is a simulated answer."``, padded with filler words up to the
configured number of stream chunks. :class:`~.base.Simulator` builds an :class:`Answer` from it
(``Simulator.answer``), cut to ``max_tokens`` words when the request asks for fewer (the
provider modules then use their "length" finish reason). One word counts as one token; prompt
tokens are the words of the request's text fields (:func:`count_words`). Embeddings are
deterministic unit vectors derived from the input text (:func:`embedding_vector`).

In echo mode (``Simulator(echo=True)``, ``POST /_sim/config {"echo": true}``) a text answer
repeats the last text of the request instead (:func:`echo_answer`), streamed one to three
characters per delta: tests of the sidecar's data protection read back what the provider
received, with placeholders such as ``[EMAIL_1]`` split across deltas.

Nothing here knows about HTTP or wire formats; the provider modules put these values into
their own JSON shapes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_REPLY",
    "Answer",
    "build_answer",
    "count_words",
    "echo_answer",
    "embedding_vector",
    "last_text",
    "reply_words",
    "text_answer",
    "tool_parameters",
]

_FILLER: Final = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
)
DEFAULT_REPLY: Final = "Hello from {name}! This is a simulated answer."

# Keys whose string values count as prompt text, whatever the provider.
_TEXT_KEYS: Final = frozenset(
    {"text", "content", "input", "prompt", "system", "instructions", "messages", "contents"}
)


def count_words(node: Any, key: str | None = None) -> int:
    """Count whitespace-separated words in the text fields of a JSON request body."""
    if isinstance(node, str):
        return len(node.split()) if key in _TEXT_KEYS else 0
    if isinstance(node, list):
        return sum(count_words(item, key) for item in node)
    if isinstance(node, dict):
        return sum(count_words(value, name) for name, value in node.items())
    return 0


def last_text(node: Any, key: str | None = None) -> str | None:
    """The last string of a JSON request body's text fields (those :func:`count_words`
    counts): the latest message's text in every provider's shape."""
    if isinstance(node, str):
        return node if key in _TEXT_KEYS else None
    items: Any = ()
    if isinstance(node, list):
        items = ((key, item) for item in reversed(node))
    elif isinstance(node, dict):
        items = reversed(node.items())
    for name, value in items:
        found = last_text(value, name)
        if found is not None:
            return found
    return None


ECHO_PREFIX: Final = "You said: "
# Characters per streamed delta in echo mode, in turn: pieces of 1, 2 and 3 characters cut
# any placeholder of more than three characters somewhere.
ECHO_PIECE_SIZES: Final = (1, 2, 3)


def echo_answer(text: str) -> Answer:
    """``ECHO_PREFIX + text`` as an answer streamed in pieces of 1, 2, 3, 1... characters."""
    full = ECHO_PREFIX + text
    pieces: list[str] = []
    start = 0
    for size in itertools.cycle(ECHO_PIECE_SIZES):
        if start >= len(full):
            break
        pieces.append(full[start : start + size])
        start += size
    return Answer(full, tuple(pieces), max(1, len(full.split())))


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector of ``dims`` floats derived from ``text``."""
    dims = max(1, dims)
    digest = hashlib.shake_256(text.encode()).digest(2 * dims)
    raw = [
        int.from_bytes(digest[i : i + 2], "little", signed=True) / 32768.0
        for i in range(0, 2 * dims, 2)
    ]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


@dataclass(frozen=True, slots=True)
class Answer:
    """The deterministic reply: full text, its stream pieces, its token count."""

    text: str
    pieces: tuple[str, ...]
    tokens: int
    truncated: bool = False


def reply_words(template: str, name: str, min_words: int) -> tuple[str, ...]:
    """The words of ``template`` (``{name}`` replaced), padded with filler to ``min_words``."""
    words = template.replace("{name}", name).split() or ["Hello"]
    filler = itertools.cycle(_FILLER)
    while len(words) < min_words:
        words.append(next(filler))
    return tuple(words)


def build_answer(words: Sequence[str], chunks: int, *, truncated: bool = False) -> Answer:
    """``words`` as an answer streamed in ``chunks`` pieces (fewer if there are fewer words)."""
    n = len(words)
    groups = max(1, min(chunks, n))
    pieces: list[str] = []
    for i in range(groups):
        part = " ".join(words[i * n // groups : (i + 1) * n // groups])
        pieces.append(part if i == 0 else " " + part)
    return Answer(" ".join(words), tuple(pieces), n, truncated)


def text_answer(text: str, chunks: int) -> Answer:
    """``text`` (e.g. JSON, where words do not matter) as an answer in ``chunks`` pieces."""
    groups = max(1, min(chunks, len(text)))
    n = len(text)
    pieces = tuple(text[i * n // groups : (i + 1) * n // groups] for i in range(groups))
    return Answer(text, pieces, max(1, len(text.split())))


def tool_parameters(tool: Any) -> Any:
    """The JSON Schema of a tool's arguments, whatever the API's tool shape."""
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    if isinstance(function, dict):
        return function.get("parameters")
    for key in ("parameters", "input_schema"):
        if isinstance(tool.get(key), dict):
            return tool[key]
    return None


def forced_function(choice: Any) -> str | None:
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(choice.get("name"), str):  # Responses API form
            return str(choice["name"])
    return None


def tool_name(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return str(function["name"])
    if isinstance(tool.get("name"), str):  # Responses API form
        return str(tool["name"])
    return None
