"""kopf wiring: watch events feed the :class:`Reconciler`; nothing else happens here.

Only ``on.event`` handlers are used: they keep no state in annotations, so
Secrets' data is never copied anywhere (a kopf change handler on Secrets would
store the last-handled body, keys included, in an annotation).

Handlers are coroutines: kopf runs plain functions in a thread pool, where they would
change the inventory while the worker iterates over it on the event loop. As coroutines
they run on the loop, between the worker's awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from aiguillage.operator import spend
from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.auditkeys import AuditKeys
from aiguillage.operator.kube import Kube
from aiguillage.operator.reconciler import Reconciler, operator_namespace

log = logging.getLogger("aiguillage.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Survive API-server restarts and silent watch stalls: reconnect at least every minute.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 70
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = "aiguillage.dev/finalizer"
    webhook = memo.get("webhook")
    if webhook is not None:
        from aiguillage.operator import webhook as admission

        settings.admission.server = admission.server(webhook)
        if webhook.managed:
            settings.admission.managed = admission.WEBHOOK_CONFIG
    # The Kubernetes client is synchronous: its calls run in threads, several renders at once.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=16))
    kube = Kube()
    reconciler = Reconciler(kube, audit_keys=AuditKeys(kube, operator_namespace()))
    delay = 0.5
    while True:
        try:
            await reconciler.prime()
            break
        except Exception as exc:  # API server not reachable yet: keep everything as it is
            log.warning("cannot list objects yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
    memo["reconciler"] = reconciler
    memo["worker"] = asyncio.create_task(reconciler.run())
    memo["spend"] = asyncio.create_task(spend.run(reconciler))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in (memo.get("worker"), memo.get("spend")):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _deleted(event: Mapping[str, Any]) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event(GROUP, VERSION, "aiproviders")
async def provider_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    memo["reconciler"].on_provider(body, _deleted(event))


@kopf.on.event(GROUP, VERSION, "airoutes")
async def route_event(event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo["reconciler"].on_route(body, _deleted(event))


@kopf.on.event("", "v1", "secrets", when=lambda namespace, **_: namespace == operator_namespace())
async def secret_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    memo["reconciler"].on_secret(body, _deleted(event))


@kopf.on.event(GROUP, VERSION, "aipolicies")
async def policy_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    memo["reconciler"].on_policy(body, _deleted(event))


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    # Labels decide which AIPolicies select a namespace.
    memo["reconciler"].on_namespace(body, _deleted(event))
