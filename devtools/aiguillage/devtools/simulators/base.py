"""The base class of the simulated AI providers: server lifecycle, dispatch and answering.

A :class:`Simulator` owns an aiohttp application bound to a loopback port. Subclasses (one module
per wire schema: :mod:`.openai`, :mod:`.anthropic`...) add the provider's routes and say how its
errors, auth failures and stream frames look. For every API request the simulator takes the
next fault of the plan, records the request (and that fault) in the request log, applies the
faults that act before any answer (``status``, ``slow_first_byte``, ``drop``), checks
credentials and calls the provider's handler with a :class:`Call`; an :class:`ApiError` raised
on the way becomes the provider's error answer. Handlers answer through
:meth:`Simulator.send_json` and :meth:`Simulator.stream`, which apply the mid-stream faults.

The parts live next to this module, which ties them together:

* :mod:`.faults`: the fault kinds, :class:`Fault`, :class:`FaultPlan` and :class:`ApiError`;
* :mod:`.recording`: :class:`RecordedRequest`, one entry of the request log (bounded to
  ``max_log`` entries);
* :mod:`.admin`: the admin API under ``/_sim/`` through which another process drives the
  simulator (faults, request log, stream shape, health);
* :mod:`.answers`: the deterministic reply text, its stream pieces and the token counts;
* :mod:`.streaming`: writing answers frame by frame with backpressure, and breaking them.

The names they define that provider modules and tests use are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Self

import orjson
from aiohttp import web

from . import streaming, structured
from .admin import add_admin_routes
from .answers import (
    DEFAULT_REPLY,
    Answer,
    build_answer,
    count_words,
    echo_answer,
    embedding_vector,
    last_text,
    reply_words,
    text_answer,
)
from .faults import (
    CREDENTIAL_HEADERS,
    FAULT_KINDS,
    HOSTILE_ANSWER_KINDS,
    MID_STREAM_KINDS,
    ApiError,
    Fault,
    FaultKind,
    FaultPlan,
)
from .recording import RecordedRequest, record

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

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


_INVALID_JSON: Final = object()  # a body that did not parse (recorded as None)


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


def _echo_credentials(request: web.Request) -> str:
    """What a careless provider says about a rejected key: the key itself."""
    sent = [
        f"{name}: {value}"
        for name in CREDENTIAL_HEADERS
        for value in request.headers.getall(name, ())
    ]
    return "Incorrect credentials provided: " + ("; ".join(sent) or "none")


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
    :param echo: text answers repeat the request's last text, 1-3 characters per streamed
        delta (see :func:`~.answers.echo_answer`), instead of the reply.
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
        echo: bool = False,
        max_log: int = 10_000,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.api_key = api_key
        self.reply_template = reply or DEFAULT_REPLY
        self.echo = echo
        self._chunks = 4
        self._chunk_interval = 0.0
        self._words: tuple[str, ...] = ()
        self._answer = Answer("", ("",), 0)
        self.configure(chunks=chunks, chunk_interval=chunk_interval)
        self.faults = FaultPlan()
        self._log: deque[RecordedRequest] = deque(maxlen=max_log)
        # Ids of API requests whose client closed the connection before the answer was over.
        self.client_gone: list[str] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._stopping: asyncio.Event | None = None
        # What the provider would invoice: model -> [input tokens, output tokens] of every
        # answer it started (see bill()), for tests to check spend independently of a sidecar.
        self.billed: dict[str, list[int]] = {}

    # -- configuration -------------------------------------------------------------------------

    @property
    def chunks(self) -> int:
        return self._chunks

    @property
    def chunk_interval(self) -> float:
        return self._chunk_interval

    def configure(
        self,
        *,
        chunks: int | None = None,
        chunk_interval: float | None = None,
        echo: bool | None = None,
    ) -> None:
        """Change the stream shape (number of content chunks, seconds between them) or the
        echo mode."""
        if echo is not None:
            self.echo = echo
        if chunks is not None:
            if chunks < 1:
                raise ValueError("chunks must be at least 1")
            self._chunks = chunks
        if chunk_interval is not None:
            if chunk_interval < 0:
                raise ValueError("chunk_interval must not be negative")
            self._chunk_interval = chunk_interval
        self._words = reply_words(self.reply_template, self.name, self._chunks)
        self._answer = build_answer(self._words, self._chunks)

    def answer(self, max_tokens: Any = None, *, prompt: Any = None) -> Answer:
        """The reply, cut to ``max_tokens`` words when that is a smaller positive integer.

        In echo mode, the last text of ``prompt`` (the request's text fields under their
        names, e.g. ``{"messages": [...]}``) instead, whole whatever ``max_tokens``."""
        if self.echo and prompt is not None:
            echoed = last_text(prompt)
            if echoed is not None:
                return echo_answer(echoed)
        if (
            isinstance(max_tokens, int)
            and not isinstance(max_tokens, bool)
            and 0 < max_tokens < len(self._words)
        ):
            return build_answer(self._words[:max_tokens], self._chunks, truncated=True)
        return self._answer

    @property
    def reply(self) -> str:
        """The reply's text (what strings of structured answers say too)."""
        return self._answer.text

    def structured(self, text: str) -> Answer:
        """``text`` (a JSON answer) streamed in the configured number of pieces."""
        return text_answer(text, self._chunks)

    def prompted_json(self, prompt: Any) -> Answer | None:
        """An instance of the JSON Schema the prompt spells out, if it spells one out.

        Frameworks' prompt-only JSON modes (instructor's ``MD_JSON``...) ask for JSON in words
        alone; an instruction-following model answers with it, and so does the simulator.
        """
        schema = structured.schema_in_text(structured.strings_in(prompt))
        if schema is None:
            return None
        return self.structured(json.dumps(structured.instance(schema, self.reply)))

    def config_dict(self) -> dict[str, Any]:
        """The settings ``GET /_sim/config`` shows."""
        return {
            "name": self.name,
            "kind": self.kind,
            "chunks": self._chunks,
            "chunk_interval": self._chunk_interval,
            "echo": self.echo,
            "api_key_required": self.api_key is not None,
        }

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
        add_admin_routes(app, self)
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

    def bill(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """Count an answer's tokens as billed (called once an answer is decided, before it is
        sent: a provider bills what it generated even if the client never reads it all)."""
        totals = self.billed.setdefault(model, [0, 0])
        totals[0] += input_tokens
        totals[1] += output_tokens

    def clear_requests(self) -> None:
        self._log.clear()
        self.client_gone.clear()

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
        if fault is None or fault.kind not in MID_STREAM_KINDS:
            return web.Response(
                status=status, body=body, content_type="application/json", headers=all_headers
            )
        if fault.kind == "in_stream_error":
            raise ApiError.from_fault(fault, self.in_stream_error_status)
        return await streaming.write_json_with_fault(
            call.request, body, status=status, headers=all_headers, fault=fault, hold=self._hold
        )

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
        fault = (
            call.fault if call.fault is not None and call.fault.kind in MID_STREAM_KINDS else None
        )
        interval = self._chunk_interval
        await resp.prepare(call.request)
        await streaming.write_frames(
            call.request,
            resp,
            preamble=preamble,
            chunks=chunks,
            epilogue=epilogue,
            error_event=error_event,
            garbled=garbled,
            fault=fault,
            interval=interval,
            hold=self._hold,
        )
        return resp

    async def _hold(self, request: web.Request) -> None:
        stopping = self._stopping
        while stopping is not None and not stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.05)

    async def _sleep(self, seconds: float, request: web.Request) -> None:
        """Sleep, but wake up early when the simulator stops or the client goes away."""
        if seconds <= 0 or self._stopping is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._hold(request)

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
            self._log.append(record(request, call.recorded_body, fault))
            try:
                if fault is not None:
                    if fault.kind == "status":
                        raise ApiError.from_fault(fault, 500)
                    if fault.kind == "echo_credentials":
                        raise ApiError(fault.status or 400, _echo_credentials(request))
                    if fault.kind in HOSTILE_ANSWER_KINDS:
                        assert self._stopping is not None  # set while serving
                        headers = self.response_headers(call)
                        return await streaming.write_hostile(
                            request, fault, headers, self._stopping
                        )
                    if fault.kind == "drop":
                        if request.transport is not None:
                            request.transport.close()
                        return web.Response(status=204)
                    if fault.kind == "slow_first_byte":
                        await self._sleep(fault.delay, request)
                self.authenticate(call)
                return await handler(call)
            except ApiError as err:
                return self.error_response(call, err)
            finally:
                # A client that went away mid-answer (the simulator's own resets excluded).
                transport = request.transport
                if (transport is None or transport.is_closing()) and (
                    fault is None or fault.kind not in ("drop", "reset_mid_stream")
                ):
                    self.client_gone.append(call.request_id)

        return dispatch
