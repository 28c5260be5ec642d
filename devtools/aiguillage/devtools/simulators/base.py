"""Shared machinery of the simulated AI providers.

A :class:`Simulator` owns an aiohttp application bound to a loopback port. Subclasses (one module
per wire schema) add the provider's routes and say how its errors, auth failures and stream frames
look; this module gives them:

* a **fault plan**: a queue of :class:`Fault` objects, each consumed by one incoming API request
  (``repeat`` keeps applying the last one until cleared);
* a **request log** of every API request received (method, path, query, all headers, parsed JSON
  body, time, the fault applied), bounded to ``max_log`` entries;
* an **admin API** under ``/_sim/`` so that another process can drive the simulator:

  - ``POST /_sim/faults`` with ``{"faults": [{"kind": "status", "status": 503}, ...],
    "repeat": false}`` replaces the plan (a bare fault object is accepted too);
  - ``GET /_sim/faults`` shows what is left of it, ``DELETE /_sim/faults`` clears it;
  - ``GET /_sim/requests`` returns ``{"requests": [...]}``, oldest first (header names
    lower-cased; a repeated header keeps its last value); ``DELETE /_sim/requests`` clears it;
  - ``GET /_sim/config`` shows name, kind, chunks, chunk interval and whether a key is required;
    ``POST /_sim/config`` with ``{"chunks": 64, "chunk_interval": 0.01}`` changes the stream shape;
  - ``GET /_sim/health`` returns ``{"status": "ok", "name": ..., "kind": ...}``.

  Admin calls need no credentials and are neither logged nor subject to faults.

* deterministic answers: the reply text is ``"Hello from <name>! This is a simulated answer."``
  padded with filler words up to the configured number of stream chunks, cut to ``max_tokens``
  words when the request asks for fewer (then the provider's "length" finish reason is used).
  One word counts as one token; prompt tokens are the words of the request's text fields;
* stream writing that honours backpressure (every chunk goes through ``StreamResponse.write``,
  which waits for the transport to drain) and applies the mid-stream faults.

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

import asyncio
import contextlib
import hashlib
import itertools
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, Self, cast, get_args

import orjson
from aiohttp import web

__all__ = [
    "FAULT_KINDS",
    "Answer",
    "ApiError",
    "Call",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Handler",
    "RecordedRequest",
    "Simulator",
    "count_words",
    "embedding_vector",
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
_MID_STREAM: Final = frozenset(
    {"stall_mid_stream", "reset_mid_stream", "invalid_json", "in_stream_error"}
)

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

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


def count_words(node: Any, key: str | None = None) -> int:
    """Count whitespace-separated words in the text fields of a JSON request body."""
    if isinstance(node, str):
        return len(node.split()) if key in _TEXT_KEYS else 0
    if isinstance(node, list):
        return sum(count_words(item, key) for item in node)
    if isinstance(node, dict):
        return sum(count_words(value, name) for name, value in node.items())
    return 0


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


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API request as the simulator received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    time: float
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "time": self.time,
            "fault": self.fault,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """The deterministic reply: full text, its stream pieces, its token count."""

    text: str
    pieces: tuple[str, ...]
    tokens: int
    truncated: bool = False


def _build_answer(words: Sequence[str], chunks: int, *, truncated: bool = False) -> Answer:
    n = len(words)
    groups = max(1, min(chunks, n))
    pieces: list[str] = []
    for i in range(groups):
        part = " ".join(words[i * n // groups : (i + 1) * n // groups])
        pieces.append(part if i == 0 else " " + part)
    return Answer(" ".join(words), tuple(pieces), n, truncated)


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


_INVALID_JSON: Final = object()


@dataclass(slots=True)
class Call:
    """One API request being answered."""

    request: web.Request
    body: Any
    fault: Fault | None
    request_id: str
    raw: bytes = b""
    started: float = field(default_factory=time.monotonic)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or a 400 in the provider's shape."""
        if self.body is _INVALID_JSON:
            raise ApiError(400, "The request body is not valid JSON.")
        if not isinstance(self.body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return self.body

    @property
    def recorded_body(self) -> Any:
        return None if self.body is _INVALID_JSON else self.body


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Simulator:
    """Base class of the simulated providers: server lifecycle, faults, log, admin API.

    :param name: shown in the answers (``"Hello from <name>"``) and the ``x-simulator`` header.
    :param host: interface to bind (loopback by default).
    :param port: port to bind; ``0`` picks a free one (read :attr:`url` after :meth:`start`).
    :param api_key: when set, API requests must carry it in the provider's auth header.
    :param chunks: number of content deltas in a streamed answer (and words of the answer, at
        least).
    :param chunk_interval: seconds between two content deltas.
    :param reply: answer template (``{name}`` is replaced); the default says hello.
    :param max_log: how many requests the log keeps (oldest dropped first).
    """

    kind: ClassVar[str] = "base"
    #: status whose error type an ``in_stream_error`` fault without ``status`` uses
    in_stream_error_status: ClassVar[int] = 500
    #: response header carrying the request id
    request_id_header: ClassVar[str] = "x-request-id"

    def __init__(
        self,
        name: str = "simulator",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        chunks: int = 4,
        chunk_interval: float = 0.0,
        reply: str | None = None,
        max_log: int = 10_000,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.api_key = api_key
        self.reply_template = reply or DEFAULT_REPLY
        self._chunks = 4
        self._chunk_interval = 0.0
        self._words: tuple[str, ...] = ()
        self._answer = Answer("", ("",), 0)
        self.configure(chunks=chunks, chunk_interval=chunk_interval)
        self.faults = FaultPlan()
        self._log: deque[RecordedRequest] = deque(maxlen=max_log)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._stopping: asyncio.Event | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def chunks(self) -> int:
        return self._chunks

    @property
    def chunk_interval(self) -> float:
        return self._chunk_interval

    def configure(self, *, chunks: int | None = None, chunk_interval: float | None = None) -> None:
        """Change the stream shape (number of content chunks, seconds between them)."""
        if chunks is not None:
            if chunks < 1:
                raise ValueError("chunks must be at least 1")
            self._chunks = chunks
        if chunk_interval is not None:
            if chunk_interval < 0:
                raise ValueError("chunk_interval must not be negative")
            self._chunk_interval = chunk_interval
        words = self.reply_template.replace("{name}", self.name).split() or ["Hello"]
        filler = itertools.cycle(_FILLER)
        while len(words) < self._chunks:
            words.append(next(filler))
        self._words = tuple(words)
        self._answer = _build_answer(self._words, self._chunks)

    def answer(self, max_tokens: Any = None) -> Answer:
        """The reply, cut to ``max_tokens`` words when that is a smaller positive integer."""
        if (
            isinstance(max_tokens, int)
            and not isinstance(max_tokens, bool)
            and 0 < max_tokens < len(self._words)
        ):
            return _build_answer(self._words[:max_tokens], self._chunks, truncated=True)
        return self._answer

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:<port>``); only valid once started."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    @property
    def started(self) -> bool:
        return self._runner is not None

    async def start(self) -> str:
        """Bind and serve; returns :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_admin_routes(app)
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._api(handler))
        app.router.add_route("*", "/{tail:.*}", self._api(self._not_found))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            site = web.SockSite(runner, sock, backlog=1024)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._runner = runner
        self._url = f"http://{host}:{port}"
        return self._url

    async def stop(self) -> None:
        """Stop serving; stalled streams are released."""
        runner, self._runner = self._runner, None
        if self._stopping is not None:
            self._stopping.set()
        if runner is not None:
            await runner.cleanup()
        self._url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults and log (Python API) -----------------------------------------------------------

    def set_faults(
        self, faults: Iterable[Fault | Mapping[str, Any]], *, repeat: bool = False
    ) -> None:
        """Replace the fault plan (dicts use the admin API's JSON form)."""
        self.faults.set(faults, repeat=repeat)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The API requests received so far, oldest first."""
        return list(self._log)

    @property
    def last_request(self) -> RecordedRequest:
        if not self._log:
            raise LookupError("no request received")
        return self._log[-1]

    def clear_requests(self) -> None:
        self._log.clear()

    def clear(self) -> None:
        """Forget the faults and the request log."""
        self.clear_faults()
        self.clear_requests()

    # -- hooks for the provider modules --------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, path, handler)`` of the provider's API."""
        return []

    def authenticate(self, call: Call) -> None:
        """Raise :class:`ApiError` when the request lacks the right credentials."""

    def error_body(self, call: Call, err: ApiError) -> dict[str, Any]:
        """The provider's JSON error body."""
        return {"error": {"code": err.status, "message": err.message or "error"}}

    def error_headers(self, call: Call, err: ApiError) -> dict[str, str]:
        """Extra headers of an error answer (``Retry-After`` is added by the base class)."""
        return {}

    def response_headers(self, call: Call) -> dict[str, str]:
        """Headers sent with every API answer."""
        return {"x-simulator": self.name, self.request_id_header: call.request_id}

    def error_response(self, call: Call, err: ApiError) -> web.Response:
        headers = self.response_headers(call)
        headers.update(self.error_headers(call, err))
        if err.retry_after is not None:
            headers["Retry-After"] = _format_seconds(err.retry_after)
        return web.Response(
            status=err.status,
            body=orjson.dumps(self.error_body(call, err)),
            content_type="application/json",
            headers=headers,
        )

    async def _not_found(self, call: Call) -> web.StreamResponse:
        raise ApiError(404, f"Unknown path {call.request.path}", error_code="not_found")

    # -- answering -----------------------------------------------------------------------------

    def new_id(self) -> int:
        """A per-simulator sequence number, for deterministic response ids."""
        return next(self._ids)

    async def send_json(
        self, call: Call, obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> web.StreamResponse:
        """A JSON answer, applying the fault planned for this request if any."""
        body = orjson.dumps(obj)
        all_headers = self.response_headers(call)
        if headers:
            all_headers.update(headers)
        fault = call.fault
        if fault is None or fault.kind not in _MID_STREAM:
            return web.Response(
                status=status, body=body, content_type="application/json", headers=all_headers
            )
        if fault.kind == "in_stream_error":
            raise ApiError.from_fault(fault, self.in_stream_error_status)
        if fault.kind == "invalid_json":
            return web.Response(
                status=status,
                body=body[: len(body) // 2] + b"<garbled",
                content_type="application/json",
                headers=all_headers,
            )
        resp = web.StreamResponse(status=status, headers=all_headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(call.request)
        with contextlib.suppress(ConnectionError):
            await resp.write(body[: len(body) // 2])
            await self._break(call, resp, fault)
        return resp

    async def stream(
        self,
        call: Call,
        *,
        preamble: Sequence[bytes],
        chunks: Sequence[bytes],
        epilogue: Sequence[bytes],
        error_event: Callable[[Fault], bytes],
        garbled: bytes,
        content_type: str = "text/event-stream",
        charset: str | None = "utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Write a streamed answer frame by frame, applying a mid-stream fault if planned.

        ``preamble`` frames go first, then the ``chunks`` (content deltas, ``chunk_interval``
        apart), then the ``epilogue``. With no interval and no fault everything goes out in one
        write.
        """
        all_headers = self.response_headers(call)
        all_headers["Cache-Control"] = "no-cache"
        if headers:
            all_headers.update(headers)
        resp = web.StreamResponse(status=200, headers=all_headers)
        resp.content_type = content_type
        if charset:
            resp.charset = charset
        fault = call.fault if call.fault is not None and call.fault.kind in _MID_STREAM else None
        interval = self._chunk_interval
        await resp.prepare(call.request)
        try:
            if fault is None and interval <= 0:
                await resp.write(b"".join((*preamble, *chunks, *epilogue)))
                await resp.write_eof()
                return resp
            if preamble:
                await resp.write(b"".join(preamble))
            limit = len(chunks) if fault is None else min(fault.after_chunks, len(chunks))
            for i in range(limit):
                if i and interval > 0:
                    await asyncio.sleep(interval)
                await resp.write(chunks[i])
            if fault is None:
                await resp.write(b"".join(epilogue))
                await resp.write_eof()
            elif fault.kind == "invalid_json":
                await resp.write(garbled)
                await resp.write_eof()
            elif fault.kind == "in_stream_error":
                await resp.write(error_event(fault))
                await resp.write_eof()
            else:
                await self._break(call, resp, fault)
        except ConnectionError:  # the client went away; nothing left to do
            pass
        return resp

    async def _break(self, call: Call, resp: web.StreamResponse, fault: Fault) -> None:
        """Stall (hold the connection open, silent) or reset (abort the transport)."""
        transport = call.request.transport
        if fault.kind == "stall_mid_stream":
            await self._hold(call.request)
        elif transport is not None:
            # let the chunks already written reach the socket before cutting it
            deadline = time.monotonic() + 1.0
            # (no event tells when an asyncio transport's buffer empties: poll it briefly)
            while transport.get_write_buffer_size() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        transport = call.request.transport
        if transport is not None:
            transport.abort()

    async def _hold(self, request: web.Request) -> None:
        stopping = self._stopping
        while stopping is not None and not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.05)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the simulator stops."""
        if seconds <= 0 or self._stopping is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- request dispatch ----------------------------------------------------------------------

    def _api(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body: Any = None
            if raw:
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    body = _INVALID_JSON
            fault = self.faults.next()
            call = Call(request, body, fault, f"req_{self.new_id():012d}", raw)
            self._log.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=call.recorded_body,
                    time=time.time(),
                    fault=fault.kind if fault is not None else None,
                )
            )
            try:
                if fault is not None:
                    if fault.kind == "status":
                        raise ApiError.from_fault(fault, 500)
                    if fault.kind == "drop":
                        if request.transport is not None:
                            request.transport.close()
                        return web.Response(status=204)
                    if fault.kind == "slow_first_byte":
                        await self._sleep(fault.delay)
                self.authenticate(call)
                return await handler(call)
            except ApiError as err:
                return self.error_response(call, err)

        return dispatch

    # -- admin API -----------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "chunks": self._chunks,
            "chunk_interval": self._chunk_interval,
            "api_key_required": self.api_key is not None,
        }

    def _add_admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/_sim/health", self._admin_health)
        app.router.add_get("/_sim/faults", self._admin_get_faults)
        app.router.add_post("/_sim/faults", self._admin_set_faults)
        app.router.add_delete("/_sim/faults", self._admin_clear_faults)
        app.router.add_get("/_sim/requests", self._admin_get_requests)
        app.router.add_delete("/_sim/requests", self._admin_clear_requests)
        app.router.add_get("/_sim/config", self._admin_get_config)
        app.router.add_post("/_sim/config", self._admin_set_config)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")

    async def _admin_body(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise web.HTTPBadRequest(
                text=orjson.dumps({"error": f"invalid JSON: {exc}"}).decode(),
                content_type="application/json",
            ) from exc

    async def _admin_health(self, request: web.Request) -> web.Response:
        return self._json({"status": "ok", "name": self.name, "kind": self.kind})

    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return self._json(self.faults.to_dict())

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        data = await self._admin_body(request)
        try:
            if isinstance(data, dict) and "kind" in data:
                self.faults.set([data])
            elif isinstance(data, dict) and isinstance(data.get("faults"), list):
                repeat = data.get("repeat", False)
                if not isinstance(repeat, bool):
                    raise ValueError("'repeat' must be a boolean")
                self.faults.set(data["faults"], repeat=repeat)
            else:
                raise ValueError('expected {"faults": [...], "repeat": false} or one fault object')
        except ValueError as exc:
            return self._json({"error": str(exc)}, status=400)
        return self._json(self.faults.to_dict())

    async def _admin_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return self._json(self.faults.to_dict())

    async def _admin_get_requests(self, request: web.Request) -> web.Response:
        return self._json({"requests": [r.to_dict() for r in self._log]})

    async def _admin_clear_requests(self, request: web.Request) -> web.Response:
        self._log.clear()
        return self._json({"requests": []})

    async def _admin_get_config(self, request: web.Request) -> web.Response:
        return self._json(self.config_dict())

    async def _admin_set_config(self, request: web.Request) -> web.Response:
        data = await self._admin_body(request)
        if not isinstance(data, dict) or set(data) - {"chunks", "chunk_interval"}:
            return self._json(
                {"error": "only 'chunks' and 'chunk_interval' can be set"}, status=400
            )
        chunks = data.get("chunks")
        interval = data.get("chunk_interval")
        try:
            if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)):
                raise ValueError("'chunks' must be an integer")
            if interval is not None and (
                isinstance(interval, bool) or not isinstance(interval, int | float)
            ):
                raise ValueError("'chunk_interval' must be a number")
            self.configure(
                chunks=chunks, chunk_interval=None if interval is None else float(interval)
            )
        except ValueError as exc:
            return self._json({"error": str(exc)}, status=400)
        return self._json(self.config_dict())
