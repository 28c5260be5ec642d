"""Injected faults: what they are, the plan that queues them, and the error answers they become.

A :class:`~.base.Simulator` owns a :class:`FaultPlan`, a queue of :class:`Fault` objects each
consumed by one incoming API request (``repeat`` keeps applying the last one until cleared). It
is filled from Python (``Simulator.set_faults``) or over HTTP (``POST /_sim/faults``, see
:mod:`.admin`). The simulator applies ``status``, ``slow_first_byte``, ``drop``,
``echo_credentials`` and the hostile answers (:data:`HOSTILE_ANSWER_KINDS`) before the provider's
handler runs; the mid-stream kinds (:data:`MID_STREAM_KINDS`) are applied while the answer is
written (:mod:`.streaming`).

:class:`ApiError` is an error answer in the provider's shape: what a ``status`` or
``in_stream_error`` fault turns into (:meth:`ApiError.from_fault`), and what handlers raise for
a request they reject. Each provider module renders it in its own wire format.

Fault kinds (fields other than ``kind`` are optional unless noted):

``status``            ``status`` (required), ``retry_after`` seconds (adds ``Retry-After``),
                      ``message``: the provider's error body for that status. ``error_type``
                      overrides the error's type (OpenAI ``type``, Anthropic ``error.type``,
                      Gemini ``status``, Bedrock exception name), ``error_code`` its code
                      (OpenAI/Azure ``code``, Gemini ``ErrorInfo`` reason).
``slow_first_byte``   ``delay`` seconds before any response byte, then the normal answer.
``drop``              the connection is closed without an answer.
``stall_mid_stream``  ``after_chunks`` content chunks are sent, then nothing (connection kept
                      open) until the client goes away or the simulator stops.
``reset_mid_stream``  ``after_chunks`` content chunks are sent (and flushed), then the transport
                      is aborted: the client sees the connection end inside the body.
``invalid_json``      ``after_chunks`` good chunks, then a garbled data line (non-streaming
                      answers: a 200 whose body is not JSON).
``in_stream_error``   ``after_chunks`` good chunks, then the provider's in-stream error
                      (``status`` picks the error type; non-streaming answers get the equivalent
                      HTTP error).

Hostile answers, which replace the provider's answer whatever the request (no credentials are
checked, any path serves them):

``redirect``          ``location`` (required) in a ``Location`` header, ``status`` 301, 302, 303,
                      307 or 308 (default 307), empty body.
``raw``               exactly ``body`` (bytes; ``body`` text or ``body_base64`` in JSON), with
                      ``status`` (default 200; any of 100-999) and exactly ``headers`` (a
                      mapping; only ``Content-Length`` and ``Connection: close`` are added, so
                      there is no content type unless given), then the connection is closed.
``flood``             a body of ``size`` bytes once decoded (default: endless, until the client
                      goes away or the simulator stops): ``body`` first, then ``fill`` (default
                      ``a``) repeated, as ``content_type`` (default ``application/json``),
                      gzip-compressed on the fly when ``encoding`` is ``gzip`` (a 4 GiB body is
                      then about 4 MiB on the wire: a decompression bomb).
``echo_credentials``  the provider's error (``status``, default 400) whose message quotes the
                      request's credential headers verbatim, as a careless provider would.

For non-streaming answers ``stall_mid_stream`` and ``reset_mid_stream`` send the headers and the
first half of the body. "Content chunks" are the text deltas; the frames a provider always sends
before the first delta (OpenAI's role chunk, Anthropic's ``message_start``...) are sent first.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

__all__ = [
    "CREDENTIAL_HEADERS",
    "FAULT_KINDS",
    "HOSTILE_ANSWER_KINDS",
    "MID_STREAM_KINDS",
    "ApiError",
    "Fault",
    "FaultKind",
    "FaultPlan",
]

FaultKind = Literal[
    "status",
    "slow_first_byte",
    "drop",
    "stall_mid_stream",
    "reset_mid_stream",
    "invalid_json",
    "in_stream_error",
    "redirect",
    "raw",
    "flood",
    "echo_credentials",
]
FAULT_KINDS: Final[frozenset[str]] = frozenset(get_args(FaultKind))
#: the kinds applied while the answer is being written rather than before the handler runs
MID_STREAM_KINDS: Final = frozenset(
    {"stall_mid_stream", "reset_mid_stream", "invalid_json", "in_stream_error"}
)
#: the kinds whose answer replaces the provider's, written by :mod:`.streaming`
HOSTILE_ANSWER_KINDS: Final = frozenset({"redirect", "raw", "flood"})
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: request headers that carry credentials, in any provider's API
CREDENTIAL_HEADERS: Final = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


def _number(data: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"fault field {name!r} must be a non-negative number")
    return float(value)


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"fault {name!r} must be a string")
    return value


def _body(data: Mapping[str, Any]) -> bytes | None:
    text, encoded = _text(data, "body"), _text(data, "body_base64")
    if text is not None and encoded is not None:
        raise ValueError("a fault takes 'body' or 'body_base64', not both")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("fault 'body_base64' must be base64") from exc
    return None if text is None else text.encode()


def _headers(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = data.get("headers", {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("fault 'headers' must map header names to strings")
    return tuple(value.items())


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault; see the module docstring for the kinds and their fields."""

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    after_chunks: int = 0
    message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    location: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    size: int | None = None
    fill: bytes = b"a"
    encoding: Literal["identity", "gzip"] = "identity"
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(FAULT_KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a 'status' fault needs a 'status' field")
        if self.kind == "redirect":
            if not self.location:
                raise ValueError("a 'redirect' fault needs a 'location' field")
            if self.status is not None and self.status not in REDIRECT_STATUSES:
                raise ValueError("a 'redirect' fault's status must be 301, 302, 303, 307 or 308")
        elif self.kind == "raw":
            if self.body is None:
                raise ValueError("a 'raw' fault needs a 'body' (or 'body_base64') field")
            if self.status is not None and not 100 <= self.status <= 999:
                raise ValueError("a 'raw' fault's status must be between 100 and 999")
        elif self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("fault 'status' must be an HTTP status between 200 and 599")
        if self.after_chunks < 0 or self.delay < 0 or (self.size is not None and self.size < 0):
            raise ValueError("fault 'after_chunks', 'delay' and 'size' must not be negative")
        if not self.fill:
            raise ValueError("fault 'fill' must not be empty")
        if self.encoding not in ("identity", "gzip"):
            raise ValueError("fault 'encoding' must be identity or gzip")

    @classmethod
    def raw(
        cls, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """A ``raw`` fault: exactly ``body``, with ``status`` and exactly ``headers``."""
        return cls("raw", status=status, body=body, headers=tuple((headers or {}).items()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from its JSON form; raises ``ValueError`` on a malformed one."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__} - {"body_base64"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if not isinstance(kind, str):
            raise ValueError("a fault needs a string 'kind'")
        integers: dict[str, int | None] = {}
        for name in ("status", "after_chunks", "size"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"fault {name!r} must be an integer")
            integers[name] = value
        fill = _text(data, "fill")
        return cls(
            kind=cast(FaultKind, kind),
            status=integers["status"],
            retry_after=_number(data, "retry_after", None),
            delay=_number(data, "delay", 0.0) or 0.0,
            after_chunks=integers["after_chunks"] or 0,
            message=_text(data, "message"),
            error_type=_text(data, "error_type"),
            error_code=_text(data, "error_code"),
            location=_text(data, "location"),
            headers=_headers(data),
            body=_body(data),
            size=integers["size"],
            fill=b"a" if fill is None else fill.encode(),
            encoding=cast(Literal["identity", "gzip"], _text(data, "encoding") or "identity"),
            content_type=_text(data, "content_type") or "application/json",
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, without the fields left at their defaults."""
        out: dict[str, Any] = {"kind": self.kind}
        for name, default in (
            ("status", None),
            ("retry_after", None),
            ("delay", 0.0),
            ("after_chunks", 0),
            ("message", None),
            ("error_type", None),
            ("error_code", None),
            ("location", None),
            ("size", None),
            ("encoding", "identity"),
            ("content_type", "application/json"),
        ):
            value = getattr(self, name)
            if value != default:
                out[name] = value
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.body is not None:
            out["body_base64"] = base64.b64encode(self.body).decode()
        if self.fill != b"a":
            out["fill"] = self.fill.decode(errors="replace")
        return out


class FaultPlan:
    """A queue of faults consumed one per API request; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._repeat = False

    def set(self, faults: Iterable[Fault | Mapping[str, Any]], *, repeat: bool = False) -> None:
        """Replace the plan. With ``repeat`` the last fault stays until :meth:`clear`."""
        parsed = [f if isinstance(f, Fault) else Fault.from_dict(f) for f in faults]
        with self._lock:
            self._queue = deque(parsed)
            self._repeat = repeat

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._repeat = False

    def next(self) -> Fault | None:
        """The fault for the request arriving now, if any."""
        if not self._queue:  # fast path, no lock: the normal case under load
            return None
        with self._lock:
            if not self._queue:
                return None
            if self._repeat and len(self._queue) == 1:
                return self._queue[0]
            return self._queue.popleft()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": [f.to_dict() for f in self._queue], "repeat": self._repeat}


class ApiError(Exception):
    """An error answer in the provider's shape; raised by handlers, rendered by the simulator."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.error_type = error_type
        self.error_code = error_code
        self.param = param
        self.retry_after = retry_after

    @classmethod
    def from_fault(cls, fault: Fault, default_status: int) -> ApiError:
        return cls(
            fault.status or default_status,
            fault.message,
            error_type=fault.error_type,
            error_code=fault.error_code,
            retry_after=fault.retry_after,
        )
