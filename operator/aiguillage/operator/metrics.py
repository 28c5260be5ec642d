"""The operator's Prometheus metrics (``--metrics-listen``): what a platform team alerts on.

Read from the running parts at scrape time (no bookkeeping on any hot path):

* ``aiguillage_operator_leader`` — 1 on the replica that writes (holds the Lease), else 0;
* ``aiguillage_operator_renders_total`` — namespaces rendered since start;
* ``aiguillage_operator_namespaces`` — namespaces holding outputs this replica knows of;
* ``aiguillage_operator_routes`` / ``aiguillage_operator_providers`` — objects watched;
* ``aiguillage_operator_injections_total{result}`` — pods injected, skipped or refused;
* ``aiguillage_operator_pods_patched_total`` — pods told to reload (config propagation).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from aiohttp import web

MEMO: web.AppKey[dict[Any, Any]] = web.AppKey("memo", dict)


def render(memo: Mapping[str, Any]) -> str:
    reconciler = memo.get("reconciler")
    elector = memo.get("elector")
    propagator = memo.get("propagator")
    injections: Counter[str] = memo.get("injections") or Counter()
    # Without election the only replica writes once it has started.
    leading = int(bool(elector.leading) if elector is not None else reconciler is not None)
    lines = [
        "# HELP aiguillage_operator_leader 1 when this replica writes (holds the Lease).",
        "# TYPE aiguillage_operator_leader gauge",
        f"aiguillage_operator_leader {leading}",
        "# HELP aiguillage_operator_renders_total Namespaces rendered since start.",
        "# TYPE aiguillage_operator_renders_total counter",
        f"aiguillage_operator_renders_total {reconciler.renders if reconciler else 0}",
        "# HELP aiguillage_operator_namespaces Namespaces holding outputs.",
        "# TYPE aiguillage_operator_namespaces gauge",
        f"aiguillage_operator_namespaces {len(reconciler.written) if reconciler else 0}",
        "# HELP aiguillage_operator_routes AIRoutes watched.",
        "# TYPE aiguillage_operator_routes gauge",
        f"aiguillage_operator_routes {len(reconciler.routes) if reconciler else 0}",
        "# HELP aiguillage_operator_providers AIProviders watched.",
        "# TYPE aiguillage_operator_providers gauge",
        f"aiguillage_operator_providers {len(reconciler.providers) if reconciler else 0}",
        "# HELP aiguillage_operator_injections_total Pods seen by the injection webhook.",
        "# TYPE aiguillage_operator_injections_total counter",
        *(
            f'aiguillage_operator_injections_total{{result="{result}"}} {injections[result]}'
            for result in ("injected", "skipped", "refused")
        ),
        "# HELP aiguillage_operator_pods_patched_total Pods told to reload their config.",
        "# TYPE aiguillage_operator_pods_patched_total counter",
        f"aiguillage_operator_pods_patched_total {propagator.patched if propagator else 0}",
    ]
    return "\n".join(lines) + "\n"


async def _metrics(request: web.Request) -> web.Response:
    memo: dict[Any, Any] = request.app[MEMO]
    return web.Response(text=render(memo), content_type="text/plain", charset="utf-8")


async def serve(memo: dict[Any, Any], listen: str) -> web.AppRunner:
    """Start serving ``/metrics`` on ``host:port``; the caller cleans the runner up."""
    app = web.Application()
    app[MEMO] = memo
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    await web.TCPSite(runner, host.strip("[]") or None, int(port)).start()
    return runner
