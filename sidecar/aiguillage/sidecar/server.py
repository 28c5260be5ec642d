"""The sidecar's HTTP API: OpenAI-compatible endpoints, and Anthropic's Messages, on loopback.

Handlers parse the client's request once, pick the route, and hand the rest to
:func:`aiguillage.sidecar.forward.forward`. A request keeps the config snapshot
it started with, so a reload never changes a request mid-flight. Each operation's
:class:`~aiguillage.sidecar.frontends.Frontend` shapes the sidecar's own errors for the
client's API and picks the adapter serving each target (translating when a provider's
adapter lacks the client's operation; see :mod:`aiguillage.sidecar.frontends`).

A route with data-protection rules has the request scanned once and, per target, sends
what its rules allow and restores pseudonymised values in what the client receives, whole
answers and streams alike (see :mod:`.protection`: the Exchange's share of it is
:meth:`Exchange._outgoing` and the restoring in :meth:`Exchange.unary` and
:meth:`Exchange.stream`).

Every API request leaves exactly one audit record that says what the client got, whatever
happens: a refusal before routing (:mod:`.guard`, :mod:`.validation`), an answer, a client
that went away (``client_closed``: the connection's end cancels the handler's task, and so
the upstream request, see :mod:`.httpserver.protocol`), the end of a drain
(``shutdown``, see :mod:`.shutdown`), or an exception nobody expected (``internal_error``:
a 500, or an error event in a started stream, in the client's API shape; the log names the
exception type and the request id, never the body).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from aiguillage.sidecar import endpoints, log, outcomes, probes, upstream, validation
from aiguillage.sidecar.adapters.base import (
    FORWARDABLE_HEADERS,
    Adapter,
    Call,
    Operation,
    StreamTranslator,
)
from aiguillage.sidecar.audit import AuditLog, AuditRecord
from aiguillage.sidecar.config import Provider, Route, Target
from aiguillage.sidecar.deadline import Deadline
from aiguillage.sidecar.errors import AttemptError, InvalidRequest, TimedOut, UpstreamProtocol
from aiguillage.sidecar.forward import (
    AllAttemptsFailed,
    Answer,
    Attempt,
    Chosen,
    NoCompliantTarget,
    RelayedClientError,
    cost,
    forward,
)
from aiguillage.sidecar.frontends import Frontend, frontend_for
from aiguillage.sidecar.frontends.base import Adapters
from aiguillage.sidecar.guard import Guard
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.httpserver import (
    BodyTooLarge,
    MalformedBody,
    Request,
    Response,
    Router,
    StreamResponse,
)
from aiguillage.sidecar.limits.errors import LimitError
from aiguillage.sidecar.limits.quota import Caller, Limiter, LimiterSettings
from aiguillage.sidecar.loader import Snapshot
from aiguillage.sidecar.metrics import Metrics, new_metrics
from aiguillage.sidecar.protection import (
    RequestProtection,
    release_held,
    scan_request,
    send_restored,
)
from aiguillage.sidecar.redact import redactor_for
from aiguillage.sidecar.request_id import request_id
from aiguillage.sidecar.residency import ResidencyRule
from aiguillage.sidecar.residency_headers import (
    JURISDICTION_HEADER,
    LOCATION_HEADER,
    InvalidResidencyHeader,
    from_headers,
)
from aiguillage.sidecar.shutdown import InFlight
from aiguillage.sidecar.telemetry import Telemetry

if TYPE_CHECKING:
    from aiguillage.sidecar.privacy.restore import Restorer

MAX_BODY = 16 * 1024 * 1024
# Seconds a client has to send the whole body once its headers arrived (slow clients).
BODY_SECONDS = 60.0


@dataclass
class Runtime:
    """Everything a request needs beyond its own data."""

    audit: AuditLog
    snapshot: Snapshot | None = None
    # Fingerprint of files that failed to load, so they are not re-parsed every poll.
    rejected_fingerprint: tuple[tuple[str, int, int], ...] | None = None
    client: upstream.Client | None = None  # connections to the providers, once serving
    health: HealthBoard = field(default_factory=HealthBoard)
    metrics: Metrics = field(default_factory=new_metrics)
    pod: str = field(default_factory=lambda: os.environ.get("POD_NAME", ""))
    namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", ""))
    # The calling workload, set by the injection from the pod's spec.serviceAccountName.
    service_account: str = field(default_factory=lambda: os.environ.get("POD_SERVICE_ACCOUNT", ""))
    # Where spans go; None = from the OTEL_EXPORTER_OTLP_* environment, or no traces.
    span_exporter: Any = None
    # The task applying config changes (see reload.watch); not ready once it has stopped.
    watcher: asyncio.Task[None] | None = None
    limiter_settings: LimiterSettings = field(default_factory=LimiterSettings)
    # False: requests are not counted in /metrics (AIGUILLAGE_METRICS=off; see Telemetry).
    record_metrics: bool = True
    guard: Guard = field(default_factory=Guard)
    inflight: InFlight = field(default_factory=InFlight)
    telemetry: Telemetry = field(init=False)
    # Rate limits and budgets (see limits/quota.py), and who they count the requests of.
    limiter: Limiter = field(init=False)
    caller: Caller = field(init=False)

    def __post_init__(self) -> None:
        self.telemetry = Telemetry(self.metrics, self.span_exporter, self.record_metrics)
        self.limiter = Limiter(self.metrics, self.limiter_settings)
        self.caller = Caller(self.namespace, self.service_account or "default", self.pod)
        self.audit.count_error = self._count_audit_error

    def _count_audit_error(self, metric: str, reason: str, records: int) -> None:
        self.metrics.inc(metric, (("reason", reason),), records)


T = TypeVar("T")


def _headers(rid: str, route: Route, chosen: Chosen) -> dict[str, str]:
    return {
        "x-request-id": rid,
        "x-aiguillage-route": route.name,
        "x-aiguillage-provider": chosen.target.provider,
        "x-aiguillage-model": chosen.target.model,
        "x-aiguillage-location": chosen.target.where(chosen.provider) or "",
        "x-aiguillage-attempts": str(chosen.attempts),
    }


class Exchange:
    """One client request, from its raw body to the answer and its audit record."""

    def __init__(
        self, rt: Runtime, request: Request, record: AuditRecord, frontend: Frontend
    ) -> None:
        self.rt = rt
        self.request = request
        self.record = record
        self.rid = record.request_id
        self.frontend = frontend
        self.client: StreamResponse | None = None
        # The translator of the stream being relayed (the last attempt's), once there is one.
        self.translator: StreamTranslator | None = None
        # Set once a stream's last event is written (only the end of the chunks is left).
        self.delivered = False
        # The request's data protection, when its route has rules (see _answer()).
        self.protection: RequestProtection | None = None
        self.size = 0  # bytes of the request body
        # The task serving the request (see _until), set by the handler.
        self.task: asyncio.Task[Any] | None = None
        # Known once the body is read and routed (see serve()).
        self.snap: Snapshot
        self.route: Route
        self.call: Call

    async def serve(
        self, operation: Operation, max_body: int, body_seconds: float
    ) -> StreamResponse:
        """Check, parse and route the request, then answer it along its route."""
        rt, request, record = self.rt, self.request, self.record
        snap = rt.snapshot
        if snap is not None:
            record.config_hash = snap.config.hash
            if not record.namespace:
                record.namespace = snap.config.namespace
        refusal = rt.guard.refusal(request)
        if refusal is not None:
            return self.refuse(refusal.status, refusal.message, refusal.code, refusal.type)
        if snap is None:
            return self.refuse(503, "the sidecar has no valid config yet", "not_ready", "api_error")
        self.snap = snap
        try:
            with self._until(self.task_loop().time() + body_seconds):
                raw = await request.read()
        except BodyTooLarge:
            return self.refuse(
                413, f"request body is larger than {max_body} bytes", "request_too_large"
            )
        except MalformedBody as exc:
            response = self.refuse(400, f"request body is malformed: {exc}", "malformed_body")
            response.force_close()
            return response
        except TimeoutError:
            response = self.refuse(
                408, f"the request body was not received within {body_seconds:g}s", "body_timeout"
            )
            response.force_close()
            return response
        self.size = len(raw)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self.refuse(400, f"request body is not valid JSON: {exc}", "invalid_json")
        if not isinstance(body, dict):
            return self.refuse(400, "request body must be a JSON object", "invalid_json")
        try:
            model = validation.model(body)
        except InvalidRequest as exc:
            return self.refuse(400, str(exc), exc.code)
        record.model = model
        route = snap.config.routes.get(model)
        if route is None:
            known = ", ".join(sorted(snap.config.routes)) or "none"
            return self.refuse(
                404, f'no route for model "{model}" (routes: {known})', "route_not_found"
            )
        record.route = route.name
        try:
            stream, wants_usage = validation.check(operation, body, raw)
        except InvalidRequest as exc:
            return self.refuse(400, str(exc), exc.code)
        stream = stream and self.frontend.streams
        record.stream = stream
        self.route = route
        try:
            header_rule = from_headers(
                request.headers.getall(LOCATION_HEADER, []),
                request.headers.getall(JURISDICTION_HEADER, []),
            )
        except InvalidResidencyHeader as exc:
            return self.refuse(400, str(exc), "invalid_residency_header")
        headers = request.headers
        self.call = Call(
            operation,
            body,
            stream,
            client_wants_usage=wants_usage,
            client_headers={h: v for h in FORWARDABLE_HEADERS if (v := headers.get(h))} or None,
        )
        return await self.run(header_rule)

    def _until(self, when: float) -> Deadline:
        """A deadline for a block of this request's task (asyncio.timeout_at, without the
        loop and task lookups that cost a getpid() each on Python 3.11: see deadline.py)."""
        task = self.task or asyncio.current_task()
        assert task is not None  # the server runs every handler in a task
        self.task = task
        return Deadline(task, when)

    def task_loop(self) -> asyncio.AbstractEventLoop:
        return self.task.get_loop() if self.task is not None else asyncio.get_running_loop()

    def refuse(
        self, status: int, message: str, code: str, type_: str = "invalid_request_error"
    ) -> Response:
        """The sidecar's own refusal of the request, in the client's API shape."""
        self.record.outcome, self.record.status = code, status
        headers = {"x-request-id": self.rid}
        if self.record.route:
            headers["x-aiguillage-route"] = self.record.route
        return self.frontend.error(status, message, type_, code, headers=headers)

    def client_gone(self) -> None:
        """The client closed its connection before its answer was complete."""
        if self.delivered:
            return  # it had read everything (often a client closing right after [DONE])
        record = self.record
        record.outcome = "client_closed"
        if self.client is None:
            record.status = 499  # nginx's "client closed request": nothing was answered

    async def end(self, status: int, message: str, code: str) -> StreamResponse:
        """End the request on the sidecar's side: an error answer, or an error event that
        ends a stream already started (its status stays the 200 the client got)."""
        self.record.outcome = code
        if self.client is None:
            self.record.status = status
            headers = {"x-request-id": self.rid}
            if self.record.route:
                headers["x-aiguillage-route"] = self.record.route
            return self.frontend.error(status, message, "server_error", code, headers=headers)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.client.write(self.frontend.stream_error(message, code, self.translator))
            await self.client.write_eof()
        return self.client

    def _outgoing(self, target: Target, provider: Provider) -> tuple[Call, Restorer | None]:
        """What ``target`` is sent of the request, and what puts the originals back in the
        client's answer (forward() has already checked that the target may receive it)."""
        if self.protection is None:
            return self.call, None
        out = self.protection.outgoing(target, provider)
        return out.call, out.restorer

    async def unary(
        self, adapter: Adapter, target: Target, provider: Provider, chosen: Chosen
    ) -> Answer[bytes]:
        assert self.rt.client is not None
        call, restorer = self._outgoing(target, provider)
        req = adapter.build(call, target.model)
        resp = await upstream.send(self.rt.client, req, self.route.timeouts, self.task)
        body, usage = await upstream.read_answer(
            resp, adapter, call, target.model, self.route.size_limits
        )
        if restorer is not None:
            body = restorer.body(body)  # the client's answer, in the client's API shape
        return Answer(body, usage)

    async def stream(
        self, adapter: Adapter, target: Target, provider: Provider, chosen: Chosen
    ) -> Answer[None]:
        assert self.rt.client is not None
        call, restorer = self._outgoing(target, provider)
        req = adapter.build(call, target.model)
        first_token_by = self.task_loop().time() + self.route.timeouts.first_token
        resp = await upstream.send(self.rt.client, req, self.route.timeouts, self.task)
        translator = self.translator = adapter.stream_translator(call, target.model)
        chunks = upstream.translate(resp, adapter.stream_format, translator, self.route.size_limits)
        # Originals go back into the client-facing events, after translation.
        restoring = restorer.stream() if restorer is not None else None
        try:
            # Until the first byte reaches the client, any failure may fail over.
            first: list[bytes] = []
            try:
                with self._until(first_token_by):
                    async for out in chunks:
                        first.extend(out)
                        if first:
                            break
            except TimeoutError as exc:
                raise TimedOut("no first token before the deadline") from exc
            if not first and not translator.done:
                raise UpstreamProtocol("stream ended before any data")
            client = await self._start_stream(chosen)
            try:
                await send_restored(client, b"".join(first), restoring)
                # From here on the client has bytes: failures end the stream truthfully.
                # The chunks of one batch of provider events (what one read brought) go in
                # one write: a provider sending fast costs one write per read, not per event.
                try:
                    async for out in chunks:
                        if out:
                            batch = out[0] if len(out) == 1 else b"".join(out)
                            await send_restored(client, batch, restoring)
                    if not translator.done:
                        raise UpstreamProtocol("stream ended without its end marker")
                    await release_held(client, restoring)
                except AttemptError as err:
                    await release_held(client, restoring)
                    # What the provider said, without the config's credentials (it may echo them).
                    snap = self.snap
                    detail = redactor_for(snap.config.providers, snap.adapters).text(str(err))
                    await client.write(
                        self.frontend.stream_error(
                            f"provider stream failed: {detail}", err.outcome, translator
                        )
                    )
                    self.record.attempts[-1].detail = detail
                    return Answer(None, translator.usage, ok=False)
            except ConnectionResetError:
                self.record.outcome = "client_closed"
            return Answer(None, translator.usage)
        finally:
            await chunks.aclose()
            # Read to its end, the connection serves the next request; cut short, it closes.
            resp.release()

    async def _start_stream(self, chosen: Chosen) -> StreamResponse:
        client = StreamResponse(
            headers={
                **_headers(self.rid, self.route, chosen),
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
            }
        )
        await client.prepare(self.request)
        self.client = client
        return client

    def _along_route(
        self,
        rule: ResidencyRule,
        adapters: Adapters,
        attempt: Attempt[T],
    ) -> Awaitable[tuple[Answer[T], Chosen]]:
        return forward(
            self.route,
            self.call,
            rule,
            self.snap.config.providers,
            adapters,
            self.rt.health,
            self.record,
            attempt,
            self.protection,
            task=self.task,
        )

    async def run(self, header_rule: ResidencyRule | None) -> StreamResponse:
        rule = self.route.rule
        if header_rule is not None:
            rule = rule.narrow(header_rule)
        self.record.residency = rule.as_dict()
        try:
            ticket = await self.rt.limiter.admit(self.route, self.call, self.record, self.rt.caller)
        except LimitError as exc:
            return self._fail(
                exc.status, str(exc), exc.code, exc.type, {"retry-after": str(exc.retry_after)}
            )
        try:
            return await self._answer(rule)
        finally:
            self.rt.limiter.settle(ticket, self.record)

    async def _answer(self, rule: ResidencyRule) -> StreamResponse:
        snap = self.snap
        adapters = self.frontend.adapters(self.call, snap.adapters)
        record = self.record
        engine = self.route.protection
        if engine is not None:
            self.protection = await scan_request(engine, self.call, self.size)
            record.data_found = self.protection.found()
        try:
            if self.call.stream:
                answer_s, chosen = await self._along_route(rule, adapters, self.stream)
                self._account(answer_s.usage, chosen, answer_s.ok)
                assert self.client is not None
                # Every event is written: a client leaving now has had its whole answer.
                self.delivered = True
                if record.outcome != "client_closed":
                    await self._end_stream(self.client)
                return self.client
            answer, chosen = await self._along_route(rule, adapters, self.unary)
            self._account(answer.usage, chosen, True)
            return Response(
                200,
                answer.value,
                content_type="application/json",
                headers=_headers(self.rid, self.route, chosen),
            )
        except NoCompliantTarget as exc:
            return self._fail(503, str(exc), "no_compliant_target")
        except RelayedClientError as exc:
            err = exc.error
            record.outcome, record.status = "rejected", err.status or 400
            rejected = record.attempts[-1]
            return Response(
                err.status or 400,
                err.body,
                headers={
                    "content-type": err.content_type,
                    "x-request-id": self.rid,
                    "x-aiguillage-route": self.route.name,
                    "x-aiguillage-provider": rejected.provider,
                    "x-aiguillage-model": rejected.model,
                    "x-aiguillage-location": rejected.location or "",
                    "x-aiguillage-attempts": str(self._contacted()),
                },
            )
        except AllAttemptsFailed as exc:
            if self.client is not None:
                # The route's total deadline passed while the stream was being relayed:
                # end it with an error event, never a clean-looking truncation.
                record.outcome, record.status = "stream_error", 200
                with contextlib.suppress(ConnectionResetError):
                    await self.client.write(
                        self.frontend.stream_error(
                            f"provider stream failed: {exc}", "timeout", self.translator
                        )
                    )
                    await self.client.write_eof()
                return self.client
            return self._no_answer(exc)

    async def _end_stream(self, client: StreamResponse) -> None:
        """Finish a relayed stream; a client gone after the last event lost nothing."""
        try:
            await client.write_eof()
        except ConnectionResetError:
            # The client closed once it had the end marker (SDKs do): the answer was
            # complete. Only a stream cut short is the client's loss (client_closed).
            translator = self.translator
            if translator is None or not translator.done:
                self.record.outcome = "client_closed"

    def _no_answer(self, exc: AllAttemptsFailed) -> Response:
        """The client's answer when no target answered (see :mod:`.outcomes`)."""
        record = self.record
        failure = outcomes.classify(record, self.call.operation.value)
        if failure.kind == "unsupported":
            own = self.frontend.unserved(self.call)
            if own is not None:
                record.outcome = "answered_by_sidecar"
                return Response(
                    200,
                    own,
                    content_type="application/json",
                    headers={
                        "x-request-id": self.rid,
                        "x-aiguillage-route": self.route.name,
                        "x-aiguillage-attempts": "0",
                        "x-aiguillage-answered-by": "sidecar",
                    },
                )
            return self._fail(
                400, failure.message, "unsupported_operation", "invalid_request_error"
            )
        if failure.kind == "blocked":
            return self._fail(
                400, failure.message, "blocked_personal_data", "invalid_request_error"
            )
        if failure.kind == "throttled":
            return self._fail(
                self.frontend.throttled_status(failure.overloaded),
                failure.message,
                "upstream_rate_limited",
                "rate_limit_error",
                failure.headers,
                attempts=[a.as_dict() for a in record.attempts],
            )
        return self._fail(
            502,
            str(exc),
            "all_targets_failed",
            attempts=[a.as_dict() for a in record.attempts],
        )

    def _fail(
        self,
        status: int,
        message: str,
        code: str,
        type_: str = "aiguillage_error",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        self.record.outcome, self.record.status = code, status
        return self.frontend.error(
            status,
            message,
            type_,
            code,
            headers={
                "x-request-id": self.rid,
                "x-aiguillage-route": self.route.name,
                "x-aiguillage-attempts": str(self._contacted()),
                **(headers or {}),
            },
            **extra,
        )

    def _contacted(self) -> int:
        return sum(1 for a in self.record.attempts if not a.outcome.startswith("skipped"))

    def _account(self, usage: Any, chosen: Chosen, ok: bool) -> None:
        record = self.record
        record.input_tokens = usage.input_tokens
        record.output_tokens = usage.output_tokens
        record.cost_eur = cost(chosen.target, usage)
        if not ok:
            record.outcome, record.status = "stream_error", 200


def _where(exc: BaseException) -> str:
    """Where an unexpected exception was raised (file:line in function), for the log."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


def _operation_handler(
    rt: Runtime, operation: Operation, max_body: int, body_seconds: float
) -> Any:
    frontend = frontend_for(operation)
    name = operation.value

    async def handle(request: Request) -> StreamResponse:
        start_ns = time.time_ns()
        record = AuditRecord(
            time=start_ns / 1e9,
            request_id=request_id(request.headers.get("x-request-id")),
            namespace=rt.namespace,
            pod=rt.pod,
            service_account=rt.service_account,
            route=None,
            model="",
            operation=name,
            stream=False,
            residency={},
        )
        exchange = Exchange(rt, request, record, frontend)
        task = exchange.task = rt.inflight.enter(request.loop)
        try:
            return await exchange.serve(operation, max_body, body_seconds)
        except asyncio.CancelledError:
            if not rt.inflight.expired:
                exchange.client_gone()
                raise
            # Cancelled by the sidecar itself at the end of a drain: answer truthfully.
            if task is not None:
                task.uncancel()
            return await exchange.end(503, "the sidecar is shutting down", "shutdown")
        except Exception as exc:
            log.server.error(
                "request %s failed inside the sidecar: %s at %s",
                record.request_id,
                type(exc).__name__,
                _where(exc),
            )
            return await exchange.end(
                500,
                f"the sidecar failed to handle this request ({type(exc).__name__}); "
                f"request id {record.request_id}",
                "internal_error",
            )
        finally:
            rt.inflight.leave(task)
            rt.audit.write(record)
            # Metrics and traces are built after the answer is on its way, not before.
            exchange.task_loop().call_soon(
                rt.telemetry.finished,
                record,
                start_ns,
                time.time_ns(),
                request.headers if rt.telemetry.tracing else None,
            )

    return handle


def make_app(rt: Runtime, max_body: int = MAX_BODY, body_seconds: float = BODY_SECONDS) -> Router:
    """The sidecar's routes; ``max_body`` bounds a request body (larger ones get 413; the
    server given this router must use the same limit), ``body_seconds`` the time to receive
    it once the headers arrived (408 after)."""
    router = Router()
    for path, operation in (
        ("/v1/chat/completions", Operation.CHAT),
        ("/v1/embeddings", Operation.EMBEDDINGS),
        ("/v1/completions", Operation.COMPLETIONS),
        ("/v1/responses", Operation.RESPONSES),
        ("/v1/messages", Operation.MESSAGES),
        ("/v1/messages/count_tokens", Operation.COUNT_TOKENS),
    ):
        router.add_post(path, _operation_handler(rt, operation, max_body, body_seconds))
    probes.add_routes(router, rt)
    endpoints.add_routes(router, lambda: rt.snapshot, rt.guard)
    return router
