"""``aiguillage sidecar``: start the data plane, serve until SIGTERM, then drain and exit 0.

Signals: SIGTERM and SIGINT drain (see :mod:`aiguillage.sidecar.shutdown`) and exit 0; SIGHUP
reopens the audit file (after a log rotation) and keeps serving.

Connection limits (against idle and slow clients): a connection that has no complete request
headers for ``idle_timeout`` seconds is closed, whether it is idle between requests (keep-alive)
or trickling its headers byte by byte (the timer runs from the connection's start and from
each answer, and is not reset by partial headers: see :mod:`.httpserver.protocol`); a
request whose body is not received within ``body_timeout`` seconds of its headers gets a 408
and its connection closed (after at most :data:`LINGER_SECONDS` more).

In a pod: ``--health-listen`` also serves /healthz, /readyz and /metrics (only, never the API)
on the pod IP, for the kubelet's probes and Prometheus, which cannot reach loopback;
``--ready-without-config`` serves no routes and is ready while the optional config ConfigMap is
absent (a namespace without AIRoute yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiguillage.sidecar import log, probes, responses, upstream
from aiguillage.sidecar.audit import AuditLog
from aiguillage.sidecar.auditchain import AuditChain, ChainSettings, chain_name
from aiguillage.sidecar.config import CONFIG_FILE, SidecarConfig
from aiguillage.sidecar.guard import Guard
from aiguillage.sidecar.httpserver import Router, Server
from aiguillage.sidecar.limits.quota import LimiterSettings
from aiguillage.sidecar.loader import Snapshot, fingerprint
from aiguillage.sidecar.reload import POLL_SECONDS, reload_once, watch
from aiguillage.sidecar.server import (
    BODY_SECONDS,
    MAX_BODY,
    Runtime,
    make_app,
)
from aiguillage.sidecar.shutdown import DRAIN_SECONDS

IDLE_SECONDS = 30.0
# After an early answer (408, 413), how long the rest of a body is read and dropped before the
# connection is closed, so that the client gets the answer.
LINGER_SECONDS = 2.0
# How long handlers still running get at the end of stop(); the drain has ended them before.
_CLEANUP_SECONDS = 1.0


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


@dataclass(frozen=True)
class ServeOptions:
    """How one sidecar serves: drain time, connection timeouts, allowed hosts (CLI flags,
    environment, or defaults). Not the rate limits and budgets of :mod:`.limits`."""

    drain_seconds: float = DRAIN_SECONDS
    idle_timeout: float = IDLE_SECONDS
    body_timeout: float = BODY_SECONDS
    allowed_hosts: frozenset[str] = frozenset()
    # Requests counted in /metrics; False only to measure what that costs (AIGUILLAGE_METRICS).
    metrics: bool = True

    @classmethod
    def from_environment(
        cls,
        drain_seconds: float | None = None,
        idle_timeout: float | None = None,
        body_timeout: float | None = None,
        allowed_hosts: str | None = None,
    ) -> ServeOptions:
        """Flags win over ``AIGUILLAGE_DRAIN_SECONDS``, ``AIGUILLAGE_IDLE_TIMEOUT``,
        ``AIGUILLAGE_BODY_TIMEOUT`` and ``AIGUILLAGE_ALLOWED_HOSTS`` (comma-separated);
        ``AIGUILLAGE_METRICS`` is ``on`` (the default) or ``off``."""
        env = os.environ
        hosts = allowed_hosts if allowed_hosts is not None else env.get("AIGUILLAGE_ALLOWED_HOSTS")
        return cls(
            drain_seconds=_seconds(drain_seconds, "AIGUILLAGE_DRAIN_SECONDS", DRAIN_SECONDS),
            idle_timeout=_seconds(idle_timeout, "AIGUILLAGE_IDLE_TIMEOUT", IDLE_SECONDS),
            body_timeout=_seconds(body_timeout, "AIGUILLAGE_BODY_TIMEOUT", BODY_SECONDS),
            allowed_hosts=frozenset(h.strip() for h in (hosts or "").split(",") if h.strip()),
            metrics=_on_off("AIGUILLAGE_METRICS", default=True),
        )


def _on_off(variable: str, default: bool) -> bool:
    text = os.environ.get(variable, "").strip().lower()
    if not text:
        return default
    if text in ("on", "off"):
        return text == "on"
    raise SystemExit(f"{variable}={text!r}: expected on or off")


def _seconds(flag: float | None, variable: str, default: float) -> float:
    if flag is not None:
        value = flag
    else:
        text = os.environ.get(variable)
        try:
            value = float(text) if text else default
        except ValueError:
            raise SystemExit(f"{variable}={text!r}: expected a number of seconds") from None
    if value < 0:
        raise SystemExit(f"{variable}: expected a number of seconds >= 0, not {value:g}")
    return value


def _audit_log(
    path: str | None, settings: ChainSettings | None, fallback: IO[bytes] | None
) -> AuditLog:
    """The audit trail, hash-chained under this process's name; when it goes to a file,
    checkpoints are copied to stderr too (a second place a truncation cannot reach)."""
    env = os.environ
    name = chain_name(env.get("POD_NAMESPACE", ""), env.get("POD_NAME", ""))
    chain = AuditChain(name, settings or ChainSettings.from_environment())
    to_file = path not in (None, "-")
    copy = sys.stderr.buffer if to_file else None
    return AuditLog(path, fallback=fallback, chain=chain, checkpoint_copy=copy)


class Sidecar:
    """The data plane as an object: load config, serve, watch for changes, drain, stop."""

    def __init__(
        self,
        config_dir: Path,
        credentials_dir: Path,
        audit_path: str | None = None,
        poll_seconds: float = POLL_SECONDS,
        max_body: int = MAX_BODY,
        span_exporter: Any = None,
        limiter_settings: LimiterSettings | None = None,
        serving: ServeOptions | None = None,
        audit_fallback: IO[bytes] | None = None,
        audit_chain: ChainSettings | None = None,
        ready_without_config: bool = False,
    ) -> None:
        self.config_dir = config_dir
        self.ready_without_config = ready_without_config
        self.credentials_dir = credentials_dir
        self.poll_seconds = poll_seconds
        self.max_body = max_body
        self.serving = serving or ServeOptions()
        self.runtime = Runtime(
            audit=_audit_log(audit_path, audit_chain, audit_fallback),
            span_exporter=span_exporter,
            guard=Guard(self.serving.allowed_hosts),
            limiter_settings=limiter_settings or LimiterSettings(),
            record_metrics=self.serving.metrics,
        )
        self._server: Server | None = None
        self._health_server: Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, listen: str = "127.0.0.1:4000") -> str:
        rt = self.runtime
        reload_once(rt, self.config_dir, self.credentials_dir)
        if self.ready_without_config and rt.snapshot is None:
            self._serve_no_routes_while_unconfigured()
        # A client that goes away cancels its handler, and so its upstream request.
        self._server = Server(
            make_app(rt, self.max_body, self.serving.body_timeout),
            max_body=self.max_body,
            idle_timeout=self.serving.idle_timeout,
            linger=LINGER_SECONDS,
            error_response=responses.server_error,
        )
        rt.client = upstream.new_client()
        host, port = parse_listen(listen)
        bound_port = await self._server.start(host, port, backlog=1024, reuse_address=True)
        self.url = f"http://{host}:{bound_port}"
        self._watcher = rt.watcher = asyncio.create_task(
            watch(rt, self.config_dir, self.credentials_dir, self.poll_seconds)
        )
        log.server.info("listening on %s", self.url)
        return self.url

    def _serve_no_routes_while_unconfigured(self) -> None:
        """In a pod, the config is an optional ConfigMap volume: no config.json means the
        namespace has no AIRoute (yet). Serve an empty config (every model answers 404
        route_not_found) and be ready, so the pod's app containers start; the real config is
        picked up by the watcher as soon as the kubelet writes it. A config.json that exists
        but is invalid still leaves the sidecar not ready."""
        if (self.config_dir / CONFIG_FILE).exists():
            return
        empty = SidecarConfig(namespace=self.runtime.namespace).sealed()
        stamp = fingerprint(self.config_dir, self.credentials_dir)
        self.runtime.snapshot = Snapshot(empty, {}, stamp)
        log.server.info("no %s in %s: serving no routes until one appears", CONFIG_FILE,
                        self.config_dir)  # fmt: skip

    async def start_health(self, listen: str) -> str:
        """Serve only /healthz, /readyz and /metrics on ``listen`` (the pod IP, for the kubelet's
        probes and Prometheus' scrapes, which cannot reach loopback); the API stays on loopback."""
        router = Router()
        probes.add_routes(router, self.runtime)
        self._health_server = Server(
            router, idle_timeout=self.serving.idle_timeout, error_response=responses.server_error
        )
        host, port = parse_listen(listen)
        bound_port = await self._health_server.start(host, port)
        return f"http://{host}:{bound_port}"

    async def drain(self, seconds: float | None = None) -> int:
        """Stop accepting, let requests in flight finish for up to ``seconds`` (default: the
        configured drain time), end the others. Returns how many had to be ended."""
        server = self._server
        if server is None:
            return 0
        server.shutdown()  # idle keep-alive connections close now
        wait = self.serving.drain_seconds if seconds is None else seconds
        return await self.runtime.inflight.drain(wait)

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Drain for ``drain_seconds`` (none by default), then release everything."""
        await self.drain(drain_seconds)
        if self._health_server is not None:
            await self._health_server.close(_CLEANUP_SECONDS)
            self._health_server = None
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._server is not None:
            await self._server.close(_CLEANUP_SECONDS)
            self._server = None
        if self.runtime.client is not None:
            await self.runtime.client.close()
            self.runtime.client = None
        # After the requests: their settlements are sent (or given up) before it closes.
        await self.runtime.limiter.close()
        self.runtime.audit.close()
        self.runtime.telemetry.shutdown()


# Allocations between young-generation collections (CPython's default: 700). A request makes
# a few hundred container objects, nearly all freed by reference counting; at 700 the
# collector ran every request or two (3-5 % of the sidecar's samples under load).
GC_YOUNG_THRESHOLD = 20_000


def settle_garbage_collector() -> None:
    """Once started: move what start-up allocated (modules, config, adapters) out of the
    collector's sight with ``gc.freeze()``, so full collections stop walking it, and collect
    the young generation less often (see :data:`GC_YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(
    config_dir: Path,
    credentials_dir: Path,
    listen: str,
    audit: str | None,
    serving: ServeOptions,
    health_listen: str | None = None,
    ready_without_config: bool = False,
) -> None:
    sidecar = Sidecar(
        config_dir,
        credentials_dir,
        audit,
        serving=serving,
        ready_without_config=ready_without_config,
    )
    await sidecar.start(listen)
    if health_listen:
        await sidecar.start_health(health_listen)
    settle_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, sidecar.runtime.audit.reopen)
    try:
        await stop.wait()
        log.server.info("stopping: draining for up to %gs", serving.drain_seconds)
    finally:
        await sidecar.stop(serving.drain_seconds)
    log.server.info("stopped")


def run(
    config_dir: Path,
    listen: str,
    credentials_dir: Path | None = None,
    serving: ServeOptions | None = None,
    health_listen: str | None = None,
    ready_without_config: bool = False,
) -> int:
    logging.basicConfig(
        level=os.environ.get("AIGUILLAGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    creds = credentials_dir or config_dir.parent / "credentials"
    audit = os.environ.get("AIGUILLAGE_AUDIT_LOG")
    serving = serving or ServeOptions.from_environment()
    main = serve(config_dir, creds, listen, audit, serving, health_listen, ready_without_config)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0
