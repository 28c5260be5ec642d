"""The sidecar's HTTP API: OpenAI-compatible endpoints, and Anthropic's Messages, on loopback.

Handlers parse the client's request once, pick the route, and hand the rest to
:func:`aiguillage.sidecar.forward.forward`. A request keeps the config snapshot
it started with, so a reload never changes a request mid-flight. Each operation's
:class:`~aiguillage.sidecar.frontends.Frontend` shapes the sidecar's own errors for the
client's API and picks the adapter serving each target (translating when a provider's
adapter lacks the client's operation; see :mod:`aiguillage.sidecar.frontends`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from aiguillage.sidecar import endpoints, outcomes, upstream
from aiguillage.sidecar.adapters.base import (
    FORWARDABLE_HEADERS,
    Adapter,
    Call,
    Operation,
    StreamTranslator,
)
from aiguillage.sidecar.audit import AuditLog, AuditRecord
from aiguillage.sidecar.config import Provider, Route, Target
from aiguillage.sidecar.errors import AttemptError, TimedOut, UpstreamProtocol
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
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.limits.errors import LimitError
from aiguillage.sidecar.limits.quota import Caller, Limiter, LimiterSettings
from aiguillage.sidecar.loader import Snapshot
from aiguillage.sidecar.metrics import Metrics, new_metrics
from aiguillage.sidecar.redact import redactor_for
from aiguillage.sidecar.residency import ResidencyRule
from aiguillage.sidecar.residency_headers import (
    JURISDICTION_HEADER,
    LOCATION_HEADER,
    UnknownRegionError,
    from_headers,
)
from aiguillage.sidecar.telemetry import Telemetry

MAX_BODY = 16 * 1024 * 1024


@dataclass
class Runtime:
    """Everything a request needs beyond its own data."""

    audit: AuditLog
    snapshot: Snapshot | None = None
    # Fingerprint of files that failed to load, so they are not re-parsed every poll.
    rejected_fingerprint: tuple[tuple[str, int, int], ...] | None = None
    session: aiohttp.ClientSession | None = None
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
    telemetry: Telemetry = field(init=False)
    # Rate limits and budgets (see limits/quota.py), and who they count the requests of.
    limiter: Limiter = field(init=False)
    caller: Caller = field(init=False)

    def __post_init__(self) -> None:
        self.telemetry = Telemetry(self.metrics, self.span_exporter)
        self.limiter = Limiter(self.metrics, self.limiter_settings)
        self.caller = Caller(self.namespace, self.service_account or "default", self.pod)


RUNTIME = web.AppKey("runtime", Runtime)
T = TypeVar("T")

# Request ids: 64 random bits per process, then a counter — unique, and cheaper than uuid4.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


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
    """One client request, from parsed body to the answer and its audit record."""

    def __init__(
        self,
        rt: Runtime,
        snap: Snapshot,
        request: web.Request,
        route: Route,
        call: Call,
        record: AuditRecord,
        frontend: Frontend,
    ) -> None:
        self.rt = rt
        self.snap = snap
        self.request = request
        self.route = route
        self.call = call
        self.record = record
        self.rid = record.request_id
        self.frontend = frontend
        self.client: web.StreamResponse | None = None
        # The translator of the stream being relayed (the last attempt's), once there is one.
        self.translator: StreamTranslator | None = None

    async def unary(
        self, adapter: Adapter, target: Target, provider: Provider, chosen: Chosen
    ) -> Answer[bytes]:
        assert self.rt.session is not None
        req = adapter.build(self.call, target.model)
        resp = await upstream.send(self.rt.session, req, self.route.timeouts)
        body, usage = await upstream.read_answer(
            resp, adapter, self.call, target.model, self.route.size_limits
        )
        return Answer(body, usage)

    async def stream(
        self, adapter: Adapter, target: Target, provider: Provider, chosen: Chosen
    ) -> Answer[None]:
        assert self.rt.session is not None
        loop = asyncio.get_running_loop()
        req = adapter.build(self.call, target.model)
        first_token_by = loop.time() + self.route.timeouts.first_token
        resp = await upstream.send(self.rt.session, req, self.route.timeouts)
        translator = self.translator = adapter.stream_translator(self.call, target.model)
        chunks = upstream.translate(resp, adapter.stream_format, translator, self.route.size_limits)
        try:
            # Until the first byte reaches the client, any failure may fail over.
            first: list[bytes] = []
            try:
                async with asyncio.timeout_at(first_token_by):
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
                for chunk in first:
                    await client.write(chunk)
                # From here on the client has bytes: failures end the stream truthfully.
                try:
                    async for out in chunks:
                        for chunk in out:
                            await client.write(chunk)
                    if not translator.done:
                        raise UpstreamProtocol("stream ended without its end marker")
                except AttemptError as err:
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
            resp.close()

    async def _start_stream(self, chosen: Chosen) -> web.StreamResponse:
        client = web.StreamResponse(
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
        )

    async def run(self) -> web.StreamResponse:
        rule = self.route.rule
        header_rule = from_headers(
            self.request.headers.get(LOCATION_HEADER),
            self.request.headers.get(JURISDICTION_HEADER),
        )
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

    async def _answer(self, rule: ResidencyRule) -> web.StreamResponse:
        snap = self.snap
        adapters = self.frontend.adapters(self.call, snap.adapters)
        record = self.record
        try:
            if self.call.stream:
                answer_s, chosen = await self._along_route(rule, adapters, self.stream)
                self._account(answer_s.usage, chosen, answer_s.ok)
                assert self.client is not None
                if record.outcome != "client_closed":
                    await self._end_stream(self.client)
                return self.client
            answer, chosen = await self._along_route(rule, adapters, self.unary)
            self._account(answer.usage, chosen, True)
            return web.Response(
                body=answer.value,
                content_type="application/json",
                headers=_headers(self.rid, self.route, chosen),
            )
        except NoCompliantTarget as exc:
            return self._fail(503, str(exc), "no_compliant_target")
        except RelayedClientError as exc:
            err = exc.error
            record.outcome, record.status = "rejected", err.status or 400
            rejected = record.attempts[-1]
            return web.Response(
                status=err.status or 400,
                body=err.body,
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

    async def _end_stream(self, client: web.StreamResponse) -> None:
        """Finish a relayed stream; a client gone after the last event lost nothing."""
        try:
            await client.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one too
            # The client closed once it had the end marker (SDKs do): the answer was
            # complete. Only a stream cut short is the client's loss (client_closed).
            translator = self.translator
            if translator is None or not translator.done:
                self.record.outcome = "client_closed"

    def _no_answer(self, exc: AllAttemptsFailed) -> web.Response:
        """The client's answer when no target answered (see :mod:`.outcomes`)."""
        record = self.record
        failure = outcomes.classify(record, self.call.operation.value)
        if failure.kind == "unsupported":
            own = self.frontend.unserved(self.call)
            if own is not None:
                record.outcome = "answered_by_sidecar"
                return web.Response(
                    body=own,
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
    ) -> web.Response:
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


def _operation_handler(operation: Operation, max_body: int) -> Any:
    frontend = frontend_for(operation)
    error = frontend.error

    async def handle(request: web.Request) -> web.StreamResponse:
        rt = request.app[RUNTIME]
        snap = rt.snapshot
        rid = request.headers.get("x-request-id") or next_request_id()
        with_id = {"x-request-id": rid}
        if snap is None:
            return error(
                503,
                "the sidecar has no valid config yet",
                "aiguillage_error",
                "not_ready",
                headers=with_id,
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(
                413,
                f"request body is larger than {max_body} bytes",
                "invalid_request_error",
                "request_too_large",
                headers=with_id,
            )
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return error(
                400,
                f"request body is not valid JSON: {exc}",
                "invalid_request_error",
                "invalid_json",
                headers=with_id,
            )
        if not isinstance(body, dict):
            return error(
                400,
                "request body must be a JSON object",
                "invalid_request_error",
                "invalid_json",
                headers=with_id,
            )
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error(
                400,
                'request needs a "model" string',
                "invalid_request_error",
                "model_required",
                headers=with_id,
            )
        route = snap.config.routes.get(model)
        if route is None:
            known = ", ".join(sorted(snap.config.routes)) or "none"
            return error(
                404,
                f'no route for model "{model}" (routes: {known})',
                "invalid_request_error",
                "route_not_found",
                headers=with_id,
            )
        stream = body.get("stream") is True and frontend.streams
        options = body.get("stream_options")
        headers = request.headers
        call = Call(
            operation,
            body,
            stream,
            client_wants_usage=isinstance(options, dict) and options.get("include_usage") is True,
            client_headers={h: v for h in FORWARDABLE_HEADERS if (v := headers.get(h))} or None,
        )
        start_ns = time.time_ns()
        record = AuditRecord(
            time=start_ns / 1e9,
            request_id=rid,
            namespace=rt.namespace or snap.config.namespace,
            pod=rt.pod,
            service_account=rt.service_account,
            route=route.name,
            model=model,
            operation=operation.value,
            stream=stream,
            residency={},
            config_hash=snap.config.hash,
        )
        try:
            exchange = Exchange(rt, snap, request, route, call, record, frontend)
            try:
                return await exchange.run()
            except UnknownRegionError as exc:
                record.outcome, record.status = "bad_request", 400
                return error(
                    400,
                    f"{LOCATION_HEADER}/{JURISDICTION_HEADER}: {exc}",
                    "invalid_request_error",
                    "invalid_residency_header",
                    headers={**with_id, "x-aiguillage-route": route.name},
                )
        finally:
            rt.audit.write(record)
            # Metrics and traces are built after the answer is on its way, not before.
            asyncio.get_running_loop().call_soon(
                rt.telemetry.finished,
                record,
                start_ns,
                time.time_ns(),
                request.headers if rt.telemetry.tracing else None,
            )

    return handle


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    snap = rt.snapshot
    if snap is None:
        return web.Response(status=503, text="no valid config loaded\n")
    if rt.watcher is not None and rt.watcher.done():
        return web.Response(status=503, text="config watcher stopped: changes are not applied\n")
    return web.Response(text=f"ok {snap.config.hash}\n")


async def metrics(request: web.Request) -> web.Response:
    text = request.app[RUNTIME].metrics.render()
    return web.Response(
        body=text.encode(), headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"}
    )


def make_app(rt: Runtime, max_body: int = MAX_BODY) -> web.Application:
    """The sidecar's application; ``max_body`` bounds a request body (larger ones get 413)."""
    app = web.Application(client_max_size=max_body)
    app[RUNTIME] = rt
    app.router.add_post("/v1/chat/completions", _operation_handler(Operation.CHAT, max_body))
    app.router.add_post("/v1/embeddings", _operation_handler(Operation.EMBEDDINGS, max_body))
    app.router.add_post("/v1/completions", _operation_handler(Operation.COMPLETIONS, max_body))
    app.router.add_post("/v1/responses", _operation_handler(Operation.RESPONSES, max_body))
    app.router.add_post("/v1/messages", _operation_handler(Operation.MESSAGES, max_body))
    app.router.add_post(
        "/v1/messages/count_tokens", _operation_handler(Operation.COUNT_TOKENS, max_body)
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    endpoints.add_routes(app, lambda: rt.snapshot)

    async def session_ctx(app: web.Application) -> Any:
        rt.session = upstream.new_session()
        yield
        await rt.session.close()

    app.cleanup_ctx.append(session_ctx)
    return app
