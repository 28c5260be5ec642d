"""Hypothesis strategies for hostile request bodies, per endpoint.

Two kinds of hostility are mixed: values of the wrong JSON type anywhere (:data:`HOSTILE`:
random JSON, deep nesting, huge strings), and values of the right type with contents no
test of the happy path sends (:func:`plausible`: unknown roles and part types, tool calls
whose arguments are not JSON, negative counts, empty lists, unicode edge cases...). The
second kind gets past the request checks and reaches the adapters' translations.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Characters that break naive code: NUL, controls, line and paragraph separators, BOM,
# right-to-left override, a combining mark, an astral emoji, a quote and a backslash.
EDGE_TEXT = st.text(
    alphabet=st.sampled_from(
        [*"\0\x1b\n\r\u2028\u2029\ufeff\u202e\u0301😀", '"', "\\", "a", " ", "{", "["]
    ),
    max_size=20,
)
# Personal data the data-protection rules of the ``-dp`` routes act on, and a placeholder a
# client may quote itself.
PERSONAL = st.sampled_from(
    [
        "claire.martin@example.fr",
        "+33 6 12 34 56 78",
        "FR76 3000 6000 0112 3456 7890 189",
        "4111 1111 1111 1111",
        "192.0.2.44",
        "[EMAIL_1]",
    ]
)
TEXT = st.one_of(
    st.text(max_size=30),
    EDGE_TEXT,
    st.lists(st.one_of(PERSONAL, EDGE_TEXT), max_size=4).map("".join),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
OBJECT = st.dictionaries(TEXT, JSON, max_size=4)


def deep(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


HOSTILE = st.one_of(
    SCALARS,
    st.lists(JSON, max_size=3),
    OBJECT,
    st.integers(min_value=150, max_value=420).map(deep),
    st.integers(min_value=10_000, max_value=300_000).map(lambda n: "a" * n),
)


def kind(*known: str) -> st.SearchStrategy[str]:
    """A ``type``/``role`` value: mostly known ones, sometimes anything."""
    return st.one_of(st.sampled_from(known), TEXT)


def maybe(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects holding any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


ARGUMENTS = st.one_of(
    OBJECT.map(json.dumps),
    TEXT,
    st.just("{}"),
    st.just('{"a": [1, {"b": null}]}'),
    st.integers(min_value=150, max_value=420).map(lambda depth: json.dumps({"x": deep(depth)})),
)
SCHEMA = st.one_of(st.just({"type": "object", "properties": {"city": {"type": "string"}}}), OBJECT)
DATA_URL = st.one_of(
    st.just("data:image/png;base64,iVBORw0KGgo="),
    st.just("data:image/png;base64,not base64!"),
    st.just("https://example.com/cat.png"),
    TEXT,
)

# -- OpenAI chat ------------------------------------------------------------------------------

CHAT_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": maybe({"url": DATA_URL, "detail": TEXT})}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("input_audio"),
            "input_audio": maybe({"data": TEXT, "format": kind("wav", "mp3")}),
        }
    ),
    maybe({"type": kind("text", "refusal", "file"), "text": TEXT, "refusal": TEXT}),
)
TOOL_CALL = maybe(
    {
        "id": TEXT,
        "type": kind("function"),
        "function": maybe({"name": TEXT, "arguments": ARGUMENTS}),
        "extra_content": maybe({"google": maybe({"thought_signature": TEXT})}),
    }
)
CHAT_MESSAGE = st.fixed_dictionaries(
    {"role": kind("user", "assistant", "system", "developer", "tool", "function")},
    optional={
        "content": st.one_of(st.none(), TEXT, st.lists(CHAT_PART, max_size=3)),
        "tool_calls": st.lists(TOOL_CALL, max_size=2),
        "tool_call_id": TEXT,
        "name": TEXT,
    },
)
TOOL = maybe(
    {
        "type": kind("function"),
        "function": maybe({"name": TEXT, "description": TEXT, "parameters": SCHEMA}),
    }
)
CHAT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "messages": st.lists(CHAT_MESSAGE, max_size=4),
    "stream": st.booleans(),
    "stream_options": maybe({"include_usage": st.booleans()}),
    "stop": st.one_of(TEXT, st.lists(TEXT, max_size=5)),
    "tools": st.lists(TOOL, max_size=3),
    "tool_choice": st.one_of(
        kind("auto", "none", "required"),
        st.fixed_dictionaries({"type": st.just("function"), "function": maybe({"name": TEXT})}),
    ),
    "parallel_tool_calls": st.booleans(),
    "response_format": maybe(
        {
            "type": kind("text", "json_object", "json_schema"),
            "json_schema": maybe({"name": TEXT, "schema": SCHEMA, "strict": st.booleans()}),
        }
    ),
    "max_tokens": st.integers(-5, 10**7),
    "max_completion_tokens": st.integers(0, 10**7),
    "n": st.integers(-2, 5),
    "temperature": st.floats(-10, 10),
    "top_p": st.floats(-1, 2),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "modalities": st.lists(kind("text", "audio"), max_size=2),
    "logprobs": st.booleans(),
    "user": TEXT,
    "metadata": OBJECT,
}

# -- Anthropic Messages -----------------------------------------------------------------------

BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": maybe(
                {
                    "type": kind("base64", "url"),
                    "media_type": kind("image/png", "image/jpeg"),
                    "data": TEXT,
                    "url": TEXT,
                }
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_use"), "id": TEXT, "name": TEXT, "input": st.one_of(OBJECT, JSON)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": TEXT},
        optional={
            "content": st.one_of(TEXT, st.lists(maybe({"type": kind("text"), "text": TEXT}))),
            "is_error": st.booleans(),
        },
    ),
    maybe(
        {
            "type": kind("thinking", "redacted_thinking", "document", "search_result"),
            "thinking": TEXT,
        }
    ),
)
ANTHROPIC_MESSAGE = st.fixed_dictionaries(
    {"role": kind("user", "assistant"), "content": st.one_of(TEXT, st.lists(BLOCK, max_size=3))}
)
MESSAGES_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "messages": st.lists(ANTHROPIC_MESSAGE, max_size=4),
    "system": st.one_of(TEXT, st.lists(maybe({"type": kind("text"), "text": TEXT}), max_size=2)),
    "max_tokens": st.integers(-5, 10**6),
    "stream": st.booleans(),
    "stop_sequences": st.lists(TEXT, max_size=3),
    "tools": st.lists(
        maybe(
            {
                "type": kind("custom", "web_search_20250305"),
                "name": TEXT,
                "description": TEXT,
                "input_schema": SCHEMA,
            }
        ),
        max_size=3,
    ),
    "tool_choice": maybe(
        {
            "type": kind("auto", "any", "tool", "none"),
            "name": TEXT,
            "disable_parallel_tool_use": st.booleans(),
        }
    ),
    "thinking": maybe(
        {"type": kind("enabled", "disabled"), "budget_tokens": st.integers(-1, 10**5)}
    ),
    "output_config": maybe({"format": maybe({"type": kind("json_schema"), "schema": SCHEMA})}),
    "temperature": st.floats(-1, 3),
    "top_k": st.integers(0, 1000),
    "metadata": OBJECT,
}

# -- the others -------------------------------------------------------------------------------

COMPLETIONS_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.one_of(
        TEXT, st.lists(TEXT, max_size=3), st.lists(st.integers(0, 50000), max_size=5)
    ),
    "stream": st.booleans(),
    "stream_options": maybe({"include_usage": st.booleans()}),
    "stop": st.one_of(TEXT, st.lists(TEXT, max_size=5)),
    "max_tokens": st.integers(0, 10**6),
    "n": st.integers(1, 4),
    "echo": st.booleans(),
    "suffix": TEXT,
}
EMBEDDINGS_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "input": st.one_of(
        TEXT,
        st.lists(TEXT, min_size=1, max_size=4),
        st.lists(st.lists(st.integers(-1, 100_000), max_size=4), min_size=1, max_size=2),
    ),
    "dimensions": st.integers(1, 5000),
    "encoding_format": kind("float", "base64"),
    "user": TEXT,
}
RESPONSES_ITEM = st.one_of(
    st.fixed_dictionaries(
        {
            "role": kind("user", "assistant", "system", "developer"),
            "content": st.one_of(
                TEXT,
                st.lists(
                    maybe(
                        {
                            "type": kind("input_text", "output_text", "input_image"),
                            "text": TEXT,
                            "image_url": DATA_URL,
                        }
                    ),
                    max_size=3,
                ),
            ),
        }
    ),
    maybe({"type": kind("function_call"), "call_id": TEXT, "name": TEXT, "arguments": ARGUMENTS}),
    maybe({"type": kind("function_call_output"), "call_id": TEXT, "output": TEXT}),
    maybe({"type": kind("reasoning", "message"), "id": TEXT}),
)
RESPONSES_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "input": st.one_of(TEXT, st.lists(RESPONSES_ITEM, max_size=4)),
    "instructions": TEXT,
    "stream": st.booleans(),
    "tools": st.lists(
        maybe({"type": kind("function", "web_search"), "name": TEXT, "parameters": SCHEMA}),
        max_size=3,
    ),
    "tool_choice": st.one_of(
        kind("auto", "none", "required"), maybe({"type": kind("function"), "name": TEXT})
    ),
    "max_output_tokens": st.integers(0, 10**6),
    "text": maybe(
        {
            "format": maybe(
                {"type": kind("text", "json_object", "json_schema"), "schema": SCHEMA, "name": TEXT}
            )
        }
    ),
    "previous_response_id": TEXT,
    "store": st.booleans(),
}

PLAUSIBLE = {
    "/v1/chat/completions": CHAT_FIELDS,
    "/v1/completions": COMPLETIONS_FIELDS,
    "/v1/embeddings": EMBEDDINGS_FIELDS,
    "/v1/responses": RESPONSES_FIELDS,
    "/v1/messages": MESSAGES_FIELDS,
    "/v1/messages/count_tokens": MESSAGES_FIELDS,
}


def base(path: str, model: str) -> dict[str, Any]:
    """A valid body for ``path`` asking route ``model`` (embeddings: its ``-embed`` twin)."""
    hello = [{"role": "user", "content": "hello"}]
    if path == "/v1/chat/completions":
        return {"model": model, "messages": hello}
    if path == "/v1/completions":
        return {"model": model, "prompt": "hello"}
    if path == "/v1/embeddings":
        return {"model": model + "-embed", "input": "hello"}
    if path == "/v1/responses":
        return {"model": model, "input": "hello"}
    if path == "/v1/messages/count_tokens":
        return {"model": model, "messages": hello}
    return {"model": model, "max_tokens": 16, "messages": hello}


@st.composite
def bodies(draw: st.DrawFn, path: str, models: list[str]) -> bytes:
    """A hostile request body for ``path``, as the bytes sent."""
    body = base(path, draw(st.sampled_from([*models, "no-such-route"])))
    fields = PLAUSIBLE[path]
    for _ in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from([*fields, "unknown_field"]))
        wrong_type = name not in fields or draw(st.booleans())
        body[name] = draw(HOSTILE if wrong_type else fields[name])
    # The standard library writes what orjson refuses to (deeper than 254 levels).
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode()
    mangle = draw(st.sampled_from(["none"] * 12 + ["truncate", "bad-utf8", "surrogate", "array"]))
    if mangle == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if mangle == "bad-utf8":
        return raw.replace(b"hello", b"hel\xff\xfelo", 1)
    if mangle == "surrogate":
        return raw.replace(b"hello", b"hel\\ud800lo", 1)
    if mangle == "array":
        return b"[" + raw + b"]"
    return raw
