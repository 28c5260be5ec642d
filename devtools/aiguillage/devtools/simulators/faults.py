"""Injected faults: what they are, the plan that queues them, and the error answers they become.

A :class:`~.base.Simulator` owns a :class:`FaultPlan`, a queue of :class:`Fault` objects each
consumed by one incoming API request (``repeat`` keeps applying the last one until cleared). It
is filled from Python (``Simulator.set_faults``) or over HTTP (``POST /_sim/faults``, see
:mod:`.admin`). The simulator applies ``status``, ``slow_first_byte`` and ``drop`` before the
provider's handler runs; the mid-stream kinds (:data:`MID_STREAM_KINDS`) are applied while the
answer is written (:mod:`.streaming`).

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

For non-streaming answers ``stall_mid_stream`` and ``reset_mid_stream`` send the headers and the
first half of the body. "Content chunks" are the text deltas; the frames a provider always sends
before the first delta (OpenAI's role chunk, Anthropic's ``message_start``...) are sent first.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

__all__ = [
    "FAULT_KINDS",
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
]
FAULT_KINDS: Final[frozenset[str]] = frozenset(get_args(FaultKind))
#: the kinds applied while the answer is being written rather than before the handler runs
MID_STREAM_KINDS: Final = frozenset(
    {"stall_mid_stream", "reset_mid_stream", "invalid_json", "in_stream_error"}
)


def _number(data: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"fault field {name!r} must be a non-negative number")
    return float(value)


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

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(FAULT_KINDS)}")
        if self.kind == "status" and self.status is None:
            raise ValueError("a 'status' fault needs a 'status' field")
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("fault 'status' must be an HTTP status between 200 and 599")
        if self.after_chunks < 0 or self.delay < 0:
            raise ValueError("fault 'after_chunks' and 'delay' must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from its JSON form; raises ``ValueError`` on a malformed one."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if not isinstance(kind, str):
            raise ValueError("a fault needs a string 'kind'")
        status = data.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise ValueError("fault 'status' must be an integer")
        after = data.get("after_chunks", 0)
        if isinstance(after, bool) or not isinstance(after, int):
            raise ValueError("fault 'after_chunks' must be an integer")
        texts: dict[str, str | None] = {}
        for name in ("message", "error_type", "error_code"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"fault {name!r} must be a string")
            texts[name] = value
        return cls(
            kind=cast(FaultKind, kind),
            status=status,
            retry_after=_number(data, "retry_after", None),
            delay=_number(data, "delay", 0.0) or 0.0,
            after_chunks=after,
            message=texts["message"],
            error_type=texts["error_type"],
            error_code=texts["error_code"],
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
        ):
            value = getattr(self, name)
            if value != default:
                out[name] = value
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
