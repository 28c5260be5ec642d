"""The protocol every provider adapter implements, and the token counts they read.

An adapter turns one client call (already parsed, in the client's API shape) into
one HTTP request to its provider, and the provider's answer back into the
client's shape, for whole responses and for streams. Adapters are pure
translators: they never do I/O, so each is tested without a network. Whatever an
adapter raises while reading a provider's answer, other than an AttemptError, is
made an attempt failure by :mod:`aiguillage.sidecar.upstream`.

Token counts are sanitised here, in one place: every adapter reads a count with
:func:`token_count` and :class:`Usage` checks its totals. A count must be a JSON
integer (or a float with an integral value: JSON does not tell 5 from 5.0, and Google
sends protobuf ``Value`` numbers as doubles) from 0 to :data:`MAX_TOKENS`; a missing or
null count is 0. Anything else (a string, a bool, a negative, fractional or absurd
number) makes the answer a :class:`~aiguillage.sidecar.errors.MalformedAnswer`: usage
the sidecar cannot trust is usage it cannot bill, so the attempt fails over (before
the client's first byte) or the stream ends with an error event (after it), and such
numbers never reach the audit log, the cost counters or the metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.errors import MalformedAnswer, SidecarError

# More tokens than any model's context window holds, by orders of magnitude.
MAX_TOKENS = 10**9


class UnsupportedApi(SidecarError):
    """No adapter speaks the provider's api, or it cannot serve this operation.

    Kept in a snapshot in place of the provider's adapter: its targets are skipped, and
    audited with ``outcome``.
    """

    outcome = "skipped_unsupported"


class InvalidProvider(UnsupportedApi):
    """The config names a provider whose options or credential cannot be used: only its
    targets are skipped (the rest of the config serves); the message says why."""

    outcome = "skipped_provider_invalid"


class Operation(StrEnum):
    """What the client called, named by the client-facing API."""

    CHAT = "chat.completions"
    EMBEDDINGS = "embeddings"
    COMPLETIONS = "completions"
    RESPONSES = "responses"
    MESSAGES = "messages"  # Anthropic Messages API
    COUNT_TOKENS = "messages.count_tokens"  # Anthropic's POST /v1/messages/count_tokens


# Client headers a native pass-through may carry to the provider (see Call.client_headers);
# every other client header, Authorization and Cookie first, stays at the sidecar.
FORWARDABLE_HEADERS = ("anthropic-beta", "anthropic-version")


@dataclass(frozen=True, slots=True)
class Call:
    operation: Operation
    body: dict[str, Any]
    stream: bool
    # The client asked for usage in its stream (OpenAI stream_options.include_usage).
    client_wants_usage: bool = False
    # The client's FORWARDABLE_HEADERS it sent (lower-case names), usually none. Only an
    # adapter passing the client's body through natively sends them on (an Anthropic beta
    # flag means nothing to another API, nor to a translated body).
    client_headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def token_count(value: Any, name: str) -> int:
    """A token count read from a provider's answer (``name`` says which field, for errors)."""
    if value is None:
        return 0
    count: int
    if type(value) is int:  # bool is an int subclass: refused with the rest
        count = value
    elif type(value) is float and value.is_integer():
        count = int(value)
    else:
        raise MalformedAnswer(f"provider sent usage {name} that is not a token count")
    if not 0 <= count <= MAX_TOKENS:
        raise MalformedAnswer(f"provider sent usage {name} outside 0..{MAX_TOKENS}")
    return count


def usage_object(value: Any, name: str) -> dict[str, Any] | None:
    """A provider's usage object: None when absent or null, MalformedAnswer when not an object."""
    if value is None or isinstance(value, dict):
        return value
    raise MalformedAnswer(f"provider sent {name} that is not an object")


@dataclass(slots=True)
class Usage:
    """Tokens of one answer; made only from :func:`token_count` values (see the docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        # Sums of valid counts (e.g. prompt plus cached tokens) are checked too.
        if not (0 <= self.input_tokens <= MAX_TOKENS and 0 <= self.output_tokens <= MAX_TOKENS):
            raise MalformedAnswer(f"provider sent usage totals outside 0..{MAX_TOKENS}")


class StreamTranslator(ABC):
    """Turns the provider's stream events into the client's SSE bytes, one event at a time.

    ``feed`` raises UpstreamProtocol for an error event or unparsable data; ``done``
    says whether the provider signalled a proper end (a stream that stops without it
    was cut).
    """

    usage: Usage
    done: bool

    @abstractmethod
    def feed(self, event: str | None, data: bytes) -> Iterable[bytes]: ...

    def feed_all(self, events: list[tuple[str | None, bytes]], out: list[bytes]) -> None:
        """:meth:`feed` of each event in turn, appending to ``out``: if one raises, ``out``
        holds the client's chunks of the events before it. A translator may do the same in
        one pass (see OpenAIStream)."""
        feed = self.feed
        for event, data in events:
            out.extend(feed(event, data))


REGISTRY: dict[str, type[Adapter]] = {}


class Adapter(ABC):
    api: ClassVar[str]
    # What the adapter serves, and how its provider frames a streamed answer (a key of
    # upstream.STREAM_DECODERS). Set by each class; plain attributes rather than ClassVars
    # so that a wrapping adapter (see :mod:`aiguillage.sidecar.frontends`) can take them
    # from the adapter it wraps.
    operations: frozenset[Operation]
    stream_format: str = "sse"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "api" in cls.__dict__:
            REGISTRY[cls.api] = cls

    def __init__(self, provider: Provider, credential: str | None) -> None:
        self.provider = provider
        self.credential = credential

    def secrets(self) -> list[str]:
        """The secret strings this adapter sends, to be scrubbed from what a provider echoes."""
        return [self.credential] if self.credential else []

    @abstractmethod
    def build(self, call: Call, model: str) -> UpstreamRequest:
        """The HTTP request that asks the provider's ``model`` for ``call``."""

    @abstractmethod
    def read_response(self, call: Call, raw: bytes, model: str) -> tuple[bytes, Usage]:
        """The client's response body and the token usage, from the provider's body.

        ``model`` is the target's model, the one :meth:`build` asked for. Answers name the
        model that served them, as OpenAI's and Anthropic's do (ask ``gpt-4o``, read
        ``gpt-4o-2024-08-06``): the provider's own name for it when its answer carries
        one, else ``model``; never the route's name the client used.
        """

    @abstractmethod
    def stream_translator(self, call: Call, model: str) -> StreamTranslator:
        """A fresh translator for one streamed answer (``model`` as in read_response)."""

    def error_body(self, call: Call, status: int, body: bytes) -> bytes:
        """The client-facing body for a provider error relayed as is (4xx on the request).

        Adapters whose provider does not speak the client's error shape translate here.
        """
        return body
