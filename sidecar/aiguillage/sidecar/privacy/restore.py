"""Re-identification: pseudonymised values put back into the answer the client receives.

A :class:`Restorer` works on the client-facing answer — after the provider adapter and the
frontend have translated it — so it does not depend on which provider answered: whole
answers of every client API (:meth:`Restorer.body`) and their SSE streams
(:meth:`Restorer.stream`).

JSON-escaped text. Placeholders are made of ``[``, ``]``, upper-case letters, digits and
``_``, which no JSON encoder escapes, so a placeholder reads the same in encoded JSON as in
decoded text. Whole answers and stream events are decoded (orjson), placeholders replaced
in the decoded strings the answer tables name (:data:`~.fields.ANSWER_FIELDS`; tool-call
arguments are decoded once more), and encoded again — an original holding a quote or a
backslash is then escaped by the encoder. Streamed tool-call arguments (OpenAI
``function.arguments`` deltas, Anthropic ``input_json_delta``, Responses
``function_call_arguments.delta``) are fragments of JSON text that cannot be decoded until
complete; a placeholder there is always inside a JSON string, so the original goes in
JSON-string-escaped (``orjson.dumps(original)[1:-1]``).

Split placeholders. A model may stream ``[EMA`` in one delta and ``IL_1]`` in the next. Each
text channel (a choice's content, a tool call's arguments, a content block) keeps a small
carry-over: when a delta ends with something that could still become a placeholder of
this request (``[``, ``[EM``, ``[EMAIL_``...), that tail is held back and put in front of
the channel's next delta; any other text passes at once. The held tail is released when
the channel ends (finish reason, ``content_block_stop``, ``*.done``) or the stream does,
inside that event when the event carries the channel's text, else in an event of the
channel's delta type inserted just before. At most the longest placeholder less one
character is ever held.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from aiguillage.sidecar.privacy.fields import ANSWER_FIELDS, Path, strings, with_values
from aiguillage.sidecar.privacy.placeholders import PLACEHOLDER

Event = tuple[str | None, dict[str, Any]]  # (SSE event name, decoded data)
ChannelKey = tuple[Any, ...]


class Restorer:
    """Puts originals back for one attempt's placeholders (``{"[EMAIL_1]": "a@b.eu"}``)."""

    def __init__(self, operation: str, originals: dict[str, str]) -> None:
        self.operation = str(operation)
        self.originals = originals
        self._escaped = {p: orjson.dumps(v).decode()[1:-1] for p, v in originals.items()}
        self._prefixes = {p[:i] for p in originals for i in range(1, len(p))}
        self._longest = max((len(p) for p in originals), default=0)

    def text(self, text: str, *, json_text: bool = False) -> str:
        """``text`` with every placeholder of this request replaced by its original."""
        if "[" not in text:
            return text
        table = self._escaped if json_text else self.originals
        return PLACEHOLDER.sub(lambda m: table.get(m[0], m[0]), text)

    def hold_from(self, text: str) -> int:
        """Where a tail that could still grow into a placeholder begins (len(text): none)."""
        i = text.rfind("[", max(0, len(text) - self._longest + 1))
        return i if i != -1 and text[i:] in self._prefixes else len(text)

    def document(self, doc: Any, specs: tuple[str, ...]) -> Any:
        """A decoded JSON value with the strings ``specs`` name restored (a copy if any
        changed, else ``doc`` itself)."""
        edits: dict[Path, str] = {}
        for slot in strings(doc, specs):
            restored = self.text(slot.text)
            if restored != slot.text:
                edits[slot.path] = restored
        return with_values(doc, edits) if edits else doc

    def body(self, raw: bytes) -> bytes:
        """A whole answer in the client's API shape, restored."""
        doc = _decoded(raw) if b"[" in raw else None
        if doc is None:
            return raw
        restored = self.document(doc, ANSWER_FIELDS.get(self.operation, ()))
        return raw if restored is doc else orjson.dumps(restored)

    def stream(self) -> StreamRestorer:
        """A restorer for one SSE stream of the client's API."""
        return StreamRestorer(STREAM_SHAPES[self.operation](self))


class Channels:
    """The carry-over of each text channel of one stream."""

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer
        self.held: dict[ChannelKey, str] = {}

    def push(self, key: ChannelKey, text: str, *, json_text: bool = False) -> str:
        """What of ``text`` can go to the client now, restored; the rest is held."""
        text = self.held.pop(key, "") + text
        cut = self.restorer.hold_from(text)
        if cut < len(text):
            self.held[key] = text[cut:]
        return self.restorer.text(text[:cut], json_text=json_text)

    def release(self, key: ChannelKey) -> str:
        """The held tail of a channel that ends (it never became a placeholder)."""
        return self.held.pop(key, "")

    def open(self, first: Any = None) -> list[ChannelKey]:
        """Channels holding text (those whose key starts with ``first``, if given)."""
        return [k for k in self.held if first is None or k[0] == first]


class StreamShape(ABC):
    """How one client API streams text: which event fields are channels, how they end."""

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer
        self.channels = Channels(restorer)

    @abstractmethod
    def on_event(self, name: str | None, data: dict[str, Any]) -> list[Event] | None:
        """Events to send in place of this one (None: send it unchanged)."""

    @abstractmethod
    def at_end(self) -> list[Event]:
        """Events releasing what is still held when the stream ends."""

    def push(
        self, holder: dict[str, Any], field: str, key: ChannelKey, json_text: bool = False
    ) -> bool:
        """Restore ``holder[field]`` as the next piece of channel ``key``; True if changed."""
        value = holder.get(field)
        if not isinstance(value, str):
            return False
        new = self.channels.push(key, value, json_text=json_text)
        if new == value:
            return False
        holder[field] = new
        return True


class StreamRestorer:
    """Restores an SSE byte stream, whatever its chunking: complete events are restored and
    sent, an incomplete one waits for its end (the sidecar's translators emit whole events,
    so nothing waits in practice)."""

    def __init__(self, shape: StreamShape) -> None:
        self.shape = shape
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            end, sep = _event_end(self._buffer)
            if end < 0:
                break
            raw, self._buffer = self._buffer[: end + sep], self._buffer[end + sep :]
            out.append(self._event(raw))
        return b"".join(out)

    def close(self) -> bytes:
        """What is left: an unterminated event as it came, then any held text."""
        rest, self._buffer = self._buffer, b""
        return rest + _encode(self.shape.at_end())

    def _event(self, raw: bytes) -> bytes:
        name: str | None = None
        data_lines: list[bytes] = []
        for line in raw.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip().decode(errors="replace")
            elif line.startswith(b"data:"):
                data_lines.append(line[5:].removeprefix(b" "))
        data = b"\n".join(data_lines)
        if data.strip() == b"[DONE]":
            return _encode(self.shape.at_end()) + raw
        decoded = _decoded(data) if b"{" in data else None
        if not isinstance(decoded, dict):
            return raw
        events = self.shape.on_event(name, decoded)
        return raw if events is None else _encode(events)


def _decoded(raw: bytes) -> Any:
    """The JSON value in ``raw``, or None when it is not JSON (then it passes unchanged)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _event_end(buffer: bytes) -> tuple[int, int]:
    """Index and length of the first blank line ending an event, or (-1, 0)."""
    lf = buffer.find(b"\n\n")
    crlf = buffer.find(b"\r\n\r\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        return crlf, 4
    return (lf, 2) if lf != -1 else (-1, 0)


def _encode(events: list[Event]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n".encode() if name else b""
        out.append(head + b"data: " + orjson.dumps(data) + b"\n\n")
    return b"".join(out)


# -- OpenAI chat completions and completions -------------------------------------------------


class ChoicesStream(StreamShape):
    """OpenAI chunks: each of ``choices[i]`` has its channels, ended by its ``finish_reason``;
    their held text goes into that same chunk (or, at the end of a stream that never said
    it finished, into one more chunk)."""

    def __init__(self, restorer: Restorer) -> None:
        super().__init__(restorer)
        self.envelope: dict[str, Any] = {}

    @abstractmethod
    def push_choice(self, choice: dict[str, Any], index: Any) -> bool:
        """Restore the text of one choice of a chunk; True if it changed."""

    @abstractmethod
    def release_into(self, index: Any, choice: dict[str, Any]) -> None:
        """Append what choice ``index`` holds to ``choice``."""

    def on_event(self, name: str | None, data: dict[str, Any]) -> list[Event] | None:
        self.envelope = {k: data[k] for k in ("id", "object", "created", "model") if k in data}
        changed = False
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            changed |= self.push_choice(choice, index)
            if choice.get("finish_reason") is not None and self.channels.open(index):
                self.release_into(index, choice)
                changed = True
        return [(name, data)] if changed else None

    def at_end(self) -> list[Event]:
        choices = []
        for index in sorted({k[0] for k in self.channels.open()}):
            choice: dict[str, Any] = {"index": index, "finish_reason": None}
            self.release_into(index, choice)
            choices.append(choice)
        return [(None, {**self.envelope, "choices": choices})] if choices else []


class ChatStream(ChoicesStream):
    """``chat.completion.chunk``: ``delta.content``, ``delta.refusal`` and each tool call's
    ``function.arguments`` are the channels of a choice."""

    def push_choice(self, choice: dict[str, Any], index: Any) -> bool:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return False
        changed = self.push(delta, "content", (index, "content"))
        changed |= self.push(delta, "refusal", (index, "refusal"))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                key = (index, "tool", call.get("index", 0))
                changed |= self.push(function, "arguments", key, json_text=True)
        return changed

    def release_into(self, index: Any, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        for key in self.channels.open(index):
            tail = self.channels.release(key)
            if key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                call = next((c for c in calls if c.get("index", 0) == key[2]), None)
                if call is None:
                    call = {"index": key[2], "function": {"arguments": ""}}
                    calls.append(call)
                function = call.setdefault("function", {})
                function["arguments"] = (function.get("arguments") or "") + tail
            else:
                delta[key[1]] = (delta.get(key[1]) or "") + tail


class CompletionsStream(ChoicesStream):
    """Legacy completions: ``choices[i].text`` is the one channel of choice ``i``."""

    def push_choice(self, choice: dict[str, Any], index: Any) -> bool:
        return self.push(choice, "text", (index,))

    def release_into(self, index: Any, choice: dict[str, Any]) -> None:
        choice["text"] = (choice.get("text") or "") + self.channels.release((index,))


# -- OpenAI Responses ------------------------------------------------------------------------

_RESPONSE_OBJECT_EVENTS = frozenset(
    {"response.created", "response.in_progress", "response.completed", "response.incomplete",
     "response.failed"}
)  # fmt: skip
_ITEM_FIELDS = ("content.*.text", "content.*.refusal", "arguments@json.**")


class ResponsesStream(StreamShape):
    """Responses events: text, refusal and function-call argument deltas are channels
    keyed by output (and content) index; their ``.done`` events end them and carry the
    whole text, restored like the items and response objects of the other events."""

    _DELTAS = {
        "response.output_text.delta": ("text", False),
        "response.refusal.delta": ("refusal", False),
        "response.function_call_arguments.delta": ("arguments", True),
    }
    _DONES = {
        "response.output_text.done": ("text", "text", "response.output_text.delta"),
        "response.refusal.done": ("refusal", "refusal", "response.refusal.delta"),
        "response.function_call_arguments.done": (
            "arguments", "arguments", "response.function_call_arguments.delta",
        ),
    }  # fmt: skip

    def on_event(self, name: str | None, data: dict[str, Any]) -> list[Event] | None:
        kind = data.get("type") or name or ""
        if kind in self._DELTAS:
            channel, json_text = self._DELTAS[kind]
            changed = self.push(data, "delta", self._key(data, channel), json_text)
            return [(name, data)] if changed else None
        if kind in self._DONES:
            channel, field, delta_type = self._DONES[kind]
            out: list[Event] = []
            key = self._key(data, channel)
            if key in self.channels.held:
                synthetic = {k: v for k, v in data.items() if k not in (field, "type")}
                synthetic.update(type=delta_type, delta=self.channels.release(key))
                out.append((delta_type if name else None, synthetic))
            if isinstance(data.get(field), str):
                data[field] = self.restorer.text(data[field], json_text=field == "arguments")
            out.append((name, data))
            return out
        restored: Any = None
        if kind in _RESPONSE_OBJECT_EVENTS and isinstance(data.get("response"), dict):
            restored = self.restorer.document(data["response"], ANSWER_FIELDS["responses"])
            if restored is not data["response"]:
                return [(name, {**data, "response": restored})]
        elif isinstance(data.get("item"), dict):
            restored = self.restorer.document(data["item"], _ITEM_FIELDS)
            if restored is not data["item"]:
                return [(name, {**data, "item": restored})]
        elif isinstance(data.get("part"), dict):
            restored = self.restorer.document(data["part"], ("text", "refusal"))
            if restored is not data["part"]:
                return [(name, {**data, "part": restored})]
        return None

    @staticmethod
    def _key(data: dict[str, Any], channel: str) -> ChannelKey:
        return (data.get("output_index", 0), data.get("content_index", 0), channel)

    def at_end(self) -> list[Event]:
        out: list[Event] = []
        for key in self.channels.open():
            output_index, content_index, channel = key
            delta_type = next(k for k, v in self._DELTAS.items() if v[0] == channel)
            event = {"type": delta_type, "output_index": output_index, "delta": ""}
            if channel != "arguments":
                event["content_index"] = content_index
            event["delta"] = self.channels.release(key)
            out.append((delta_type, event))
        return out


# -- Anthropic Messages ----------------------------------------------------------------------


class MessagesStream(StreamShape):
    """Anthropic events: each content block (``index``) is a channel of ``text_delta`` text
    or of ``input_json_delta`` JSON; ``content_block_stop`` ends it, preceded by a delta
    event carrying what was held."""

    _DELTA_FIELDS = {"text_delta": ("text", False), "input_json_delta": ("partial_json", True)}

    def on_event(self, name: str | None, data: dict[str, Any]) -> list[Event] | None:
        kind = data.get("type") or name
        index = data.get("index", 0)
        if kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            delta = data["delta"]
            spec = self._DELTA_FIELDS.get(delta.get("type", ""))
            if spec is None:
                return None
            field, json_text = spec
            changed = self.push(delta, field, (index, delta["type"]), json_text)
            return [(name, data)] if changed else None
        if kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            block = data["content_block"]
            changed = self.push(block, "text", (index, "text_delta"))
            # A tool_use block usually starts with an empty input; some send it whole here.
            restored = self.restorer.document(block, ("input.**",))
            if restored is not block:
                data["content_block"], changed = restored, True
            return [(name, data)] if changed else None
        if kind == "content_block_stop":
            released = self._release(index)
            return [*released, (name, data)] if released else None
        if kind == "message_stop":
            released = self.at_end()
            return [*released, (name, data)] if released else None
        return None

    def _release(self, index: Any) -> list[Event]:
        out: list[Event] = []
        for key in self.channels.open(index):
            delta_type = key[1]
            field = self._DELTA_FIELDS[delta_type][0]
            delta = {"type": delta_type, field: self.channels.release(key)}
            out.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        return out

    def at_end(self) -> list[Event]:
        out: list[Event] = []
        for index in sorted({k[0] for k in self.channels.open()}):
            out.extend(self._release(index))
        return out


class _NoText(StreamShape):
    """Embeddings are never streamed; nothing to restore."""

    def on_event(self, name: str | None, data: dict[str, Any]) -> list[Event] | None:
        return None

    def at_end(self) -> list[Event]:
        return []


STREAM_SHAPES: dict[str, type[StreamShape]] = {
    "chat.completions": ChatStream,
    "completions": CompletionsStream,
    "responses": ResponsesStream,
    "messages": MessagesStream,
    "embeddings": _NoText,
}
