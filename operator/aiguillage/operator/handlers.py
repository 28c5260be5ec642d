"""kopf wiring: watch events feed the :class:`Reconciler`; nothing else happens here.

Only ``on.event`` handlers are used: they keep no state in annotations. Secrets are not
watched through kopf at all (kopf would watch them cluster-wide):
`aiguillage.operator.secretwatch` watches the operator's namespace only.

Handlers are coroutines: kopf runs plain functions in a thread pool, where they would
change the inventory while the worker iterates over it on the event loop. As coroutines
they run on the loop, between the worker's awaits (the Secret watch hands its events to the
loop for the same reason).

Every replica watches and serves admission; with ``--leader-elect`` only the holder of the
Lease (`aiguillage.operator.leadership`) renders, writes status and propagates config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from aiguillage.operator import kube as k
from aiguillage.operator import spend
from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.auditkeys import AuditKeys
from aiguillage.operator.injection import SidecarSpec
from aiguillage.operator.kube import Kube
from aiguillage.operator.leadership import LEASE_NAME, LeaderElector
from aiguillage.operator.propagation import OUTPUTS_ANNOTATION, Propagator
from aiguillage.operator.reconciler import CONFIG_MAP, Reconciler, operator_namespace
from aiguillage.operator.secretwatch import SecretWatch
from aiguillage.operator.webhookconfig import AdmissionPolicy

log = logging.getLogger("aiguillage.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Survive API-server restarts and silent watch stalls: reconnect at least every minute.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 70
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = "aiguillage.dev/finalizer"
    kube = Kube()
    webhook = memo.get("webhook")
    if webhook is not None:
        from aiguillage.operator import webhook as admission

        inject = isinstance(memo.get("sidecar"), SidecarSpec)
        policy = AdmissionPolicy(operator_namespace(), inject=inject)
        settings.admission.server = admission.server(webhook, policy, kube.api)
    # The Kubernetes client is synchronous: its calls run in threads, several renders at once.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=16))
    reconciler = Reconciler(kube, audit_keys=AuditKeys(kube, operator_namespace()))
    rate = float(memo.get("propagation_rate", 20.0))
    propagator = Propagator(kube.core, patches_per_second=rate) if rate > 0 else None
    if propagator is not None:
        reconciler.on_written = propagator.written
        memo["propagator"] = propagator
    else:
        log.info("config propagation is off: pods load changes at the kubelet's periodic sync")
    if memo.get("metrics_listen"):
        from aiguillage.operator import metrics

        memo["metrics_runner"] = await metrics.serve(memo, memo["metrics_listen"])
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
    memo["secret_watch"] = watch = SecretWatch(
        kube.core, reconciler.inv.operator_namespace, reconciler.on_secret
    )
    watch.start()

    async def lead() -> None:
        # Taking over (or starting): what is really written now, and every namespace to check,
        # including pods a previous leader may have left unpatched.
        outputs = await k.managed_outputs(kube, CONFIG_MAP, OUTPUTS_ANNOTATION)
        reconciler.written = {ns: digest for ns, digest in outputs.items() if digest}
        reconciler.mark(*outputs, *reconciler.inv.route_namespaces())
        if propagator is None:  # off: pods load new config at the kubelet's periodic sync
            await reconciler.run()
            return
        for ns, digest in reconciler.written.items():
            propagator.written(ns, digest)
        # Spend in route status is a write too: the leader's.
        await asyncio.gather(reconciler.run(), propagator.run(), spend.run(reconciler))

    if memo.get("leader_elect"):
        elector = LeaderElector.for_api(
            kube.api, reconciler.inv.operator_namespace, name=memo.get("lease") or LEASE_NAME
        )
        memo["elector"] = elector
        memo["worker"] = asyncio.create_task(elector.run(lead))
    else:
        memo["worker"] = asyncio.create_task(lead())


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    watch = memo.get("secret_watch")
    if watch is not None:
        watch.stop()
    worker = memo.get("worker")
    if worker is not None:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    runner = memo.get("metrics_runner")
    if runner is not None:
        await runner.cleanup()


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
