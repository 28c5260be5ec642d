"""What a frontend is, the OpenAI one, and the adapter wrapper of translating frontends.

A :class:`Frontend` gives the sidecar's own errors the client's API shape and says which
adapter serves each target for a call. The base class is the OpenAI frontend: OpenAI
errors, adapters as they are. A :class:`TranslatingFrontend` serves an operation that
adapters may lack: for a target whose adapter lacks it but serves the canonical operation
(chat completions), it hands :func:`~aiguillage.sidecar.forward.forward` a
:class:`Translated` adapter instead, which builds the canonical call from the call it is
given — the client's, or the copy data protection made for that target
(:mod:`aiguillage.sidecar.protection`) — once per body, so targets sent the same body share
it, and translates the answer, the stream and the provider's errors back. An adapter that
serves the operation natively is used as it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from aiguillage.sidecar import responses
from aiguillage.sidecar.adapters.base import (
    Adapter,
    Call,
    Operation,
    StreamTranslator,
    UnsupportedApi,
    UpstreamRequest,
    Usage,
)
from aiguillage.sidecar.adapters.openai_chat import load_object
from aiguillage.sidecar.errors import UpstreamProtocol
from aiguillage.sidecar.httpserver import Response

Adapters = dict[str, Adapter | UnsupportedApi]


class Frontend:
    """The sidecar as clients of one API shape see it; this base is the OpenAI shape."""

    # Whether the operation may stream (its body's "stream": true is honoured).
    streams: ClassVar[bool] = True

    def error(
        self,
        status: int,
        message: str,
        type_: str,
        code: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        """An error the sidecar itself answers (``type_`` and ``code`` as OpenAI's)."""
        return responses.error(status, message, type_, code, headers, **extra)

    def stream_error(self, message: str, code: str, stream: StreamTranslator | None) -> bytes:
        """The event that ends a stream broken after its first byte.

        ``stream``: the translator that wrote the stream so far, when there is one.
        """
        return responses.sse_error(message, code)

    def throttled_status(self, overloaded: bool) -> int:
        """The status telling the client that every provider asked it to slow down.

        ``overloaded``: every provider said it was overloaded (Anthropic's 529) rather than
        that the caller exceeded a rate limit. OpenAI's API has no such status: 429.
        """
        return 429

    def adapters(self, call: Call, adapters: Adapters) -> Adapters:
        """The adapter of each provider for ``call``: those of the config, as they are."""
        return adapters

    def unserved(self, call: Call) -> bytes | None:
        """An answer the sidecar gives itself when no target can serve ``call``, if any.

        None (the default): the client gets a 400 ``unsupported_operation``.
        """
        return None


OPENAI = Frontend()


class TranslatingFrontend(Frontend, ABC):
    """A client API served through the canonical operation when an adapter lacks it."""

    operation: ClassVar[Operation]
    canonical: ClassVar[Operation] = Operation.CHAT

    @abstractmethod
    def to_canonical(self, call: Call) -> Call:
        """The canonical call asking for the same (UnsupportedRequest when it cannot)."""

    @abstractmethod
    def answer(self, call: Call, body: bytes) -> bytes:
        """The client's answer from the canonical answer body."""

    @abstractmethod
    def stream(self, call: Call, canonical: StreamTranslator) -> StreamTranslator:
        """A translator of the client's stream wrapping the canonical one."""

    @abstractmethod
    def error_body(self, status: int, body: bytes) -> bytes:
        """The client's error body from a canonical (OpenAI) error body."""

    def adapters(self, call: Call, adapters: Adapters) -> Adapters:
        return _Served(adapters, _Canonical(self))


class _Served(Adapters):
    """One request's adapters, each made when forward() first looks it up.

    forward() only looks up the targets it tries, so a request costs one wrapper per target
    tried, not one per provider of the config. Iterating shows only those looked up.
    """

    def __init__(self, adapters: Adapters, canonical: _Canonical) -> None:
        super().__init__()
        self._adapters = adapters
        self._canonical = canonical

    def __missing__(self, name: str) -> Adapter | UnsupportedApi:
        adapter = self._adapters[name]
        frontend = self._canonical.frontend
        if (
            not isinstance(adapter, UnsupportedApi)
            and frontend.operation not in adapter.operations
            and frontend.canonical in adapter.operations
        ):
            adapter = Translated(adapter, self._canonical)
        self[name] = adapter
        return adapter


class _Canonical:
    """One request's canonical call, made on first use and shared by its Translated adapters
    while they are sent the same body (data protection may give each target its own)."""

    __slots__ = ("frontend", "made", "source")

    def __init__(self, frontend: TranslatingFrontend) -> None:
        self.frontend = frontend
        self.source: dict[str, Any] | None = None  # the body ``made`` was made from
        self.made: Call | None = None

    def of(self, call: Call) -> Call:
        """The canonical call asking for what ``call`` asks for."""
        if self.made is None or self.source is not call.body:
            self.made = None  # a refused translation leaves no stale canonical call behind
            self.source = call.body
            self.made = self.frontend.to_canonical(call)
        return self.made


class Translated(Adapter):
    """An adapter serving a frontend's operation through the canonical one.

    It has no ``api`` of its own (it is not registered); ``operations`` is the frontend's
    operation and ``stream_format`` that of the wrapped adapter.
    """

    def __init__(self, inner: Adapter, canonical: _Canonical) -> None:
        super().__init__(inner.provider, inner.credential)
        self.inner = inner
        self._canonical = canonical
        self._frontend = canonical.frontend
        self.operations = frozenset({canonical.frontend.operation})
        self.stream_format = inner.stream_format

    def secrets(self) -> list[str]:
        return self.inner.secrets()

    def build(self, call: Call, model: str) -> UpstreamRequest:
        return self.inner.build(self._canonical.of(call), model)

    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        body, usage = self.inner.read_response(self._canonical.of(call), raw, model)
        return self._frontend.answer(call, body), usage

    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        inner = self.inner.stream_translator(self._canonical.of(call), model)
        return self._frontend.stream(call, inner)

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        canonical = self._canonical.made
        # Without a canonical call the translation itself refused: already an OpenAI error.
        if canonical is not None:
            body = self.inner.error_body(canonical, status, body)
        return self._frontend.error_body(status, body)


def first_choice(body: dict[str, Any]) -> dict[str, Any] | None:
    """The first choice of an OpenAI chat answer or chunk (only one is ever asked for)."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    return choice if isinstance(choice, dict) else None


def chat_answer(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(body, first choice, its message) of a ``chat.completion`` body."""
    body = load_object(raw, "chat completion")
    choice = first_choice(body)
    message = choice.get("message") if choice is not None else None
    if choice is None or not isinstance(message, dict):
        raise UpstreamProtocol("provider answered without a choice")
    return body, choice, message


def sse_payloads(written: bytes) -> Iterator[bytes]:
    """The ``data`` of each SSE event in ``written`` (what a canonical translator wrote).

    Translating streams read the canonical (OpenAI) chunks back from the bytes the wrapped
    translator would have sent, so that they see exactly what an OpenAI client would.
    """
    for frame in written.split(b"\n\n"):
        payload = b"\n".join(
            line[6:] if line.startswith(b"data: ") else line[5:]
            for line in frame.split(b"\n")
            if line.startswith(b"data:")
        )
        if payload:
            yield payload
