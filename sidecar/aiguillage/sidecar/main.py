"""``aiguillage sidecar``: start the data plane and serve until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from aiguillage.sidecar import log
from aiguillage.sidecar.audit import AuditLog
from aiguillage.sidecar.limits.quota import LimiterSettings
from aiguillage.sidecar.reload import POLL_SECONDS, reload_once, watch
from aiguillage.sidecar.server import MAX_BODY, Runtime, make_app


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class Sidecar:
    """The data plane as an object: load config, serve, watch for changes, stop."""

    def __init__(
        self,
        config_dir: Path,
        credentials_dir: Path,
        audit_path: str | None = None,
        poll_seconds: float = POLL_SECONDS,
        max_body: int = MAX_BODY,
        span_exporter: Any = None,
        limiter_settings: LimiterSettings | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.credentials_dir = credentials_dir
        self.poll_seconds = poll_seconds
        self.max_body = max_body
        self.runtime = Runtime(
            audit=AuditLog(audit_path),
            span_exporter=span_exporter,
            limiter_settings=limiter_settings or LimiterSettings(),
        )
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, listen: str = "127.0.0.1:4000") -> str:
        rt = self.runtime
        reload_once(rt, self.config_dir, self.credentials_dir)
        app = make_app(rt, self.max_body)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = parse_listen(listen)
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        self._watcher = rt.watcher = asyncio.create_task(
            watch(rt, self.config_dir, self.credentials_dir, self.poll_seconds)
        )
        log.server.info("listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._runner is not None:
            await self._runner.cleanup()
        # After the requests: their settlements are sent (or given up) before it closes.
        await self.runtime.limiter.close()
        self.runtime.audit.close()
        self.runtime.telemetry.shutdown()


async def serve(config_dir: Path, credentials_dir: Path, listen: str, audit: str | None) -> None:
    sidecar = Sidecar(config_dir, credentials_dir, audit)
    await sidecar.start(listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sidecar.stop()


def run(config_dir: Path, listen: str, credentials_dir: Path | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("AIGUILLAGE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    creds = credentials_dir or config_dir.parent / "credentials"
    audit = os.environ.get("AIGUILLAGE_AUDIT_LOG")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(serve(config_dir, creds, listen, audit))
    else:
        uvloop.run(serve(config_dir, creds, listen, audit))
    return 0
