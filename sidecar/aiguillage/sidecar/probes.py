"""The sidecar's endpoints for its operators rather than its clients: ``/healthz`` (the
process serves), ``/readyz`` (a valid config is loaded and watched) and ``/metrics``
(Prometheus' text format). Served on loopback with the API, and alone on the pod IP for the
kubelet's probes and Prometheus' scrapes (see :meth:`aiguillage.sidecar.main.Sidecar.start_health`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiguillage.sidecar.httpserver import Request, Response, Router

if TYPE_CHECKING:
    from aiguillage.sidecar.server import Runtime

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def add_routes(router: Router, rt: Runtime) -> None:
    async def healthz(request: Request) -> Response:
        return Response(text="ok\n")

    async def readyz(request: Request) -> Response:
        snap = rt.snapshot
        if snap is None:
            return Response(503, text="no valid config loaded\n")
        if rt.watcher is not None and rt.watcher.done():
            return Response(503, text="config watcher stopped: changes are not applied\n")
        return Response(text=f"ok {snap.config.hash}\n")

    async def metrics(request: Request) -> Response:
        rt.telemetry.observe_state(rt.health, rt.audit.chain, rt.service_account)
        return Response(200, rt.metrics.render().encode(), content_type=PROMETHEUS_TEXT)

    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)
