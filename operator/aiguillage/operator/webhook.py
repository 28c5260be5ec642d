"""The admission webhooks (kopf): validating AIRoutes, AIProviders and AIPolicies, injecting
sidecars.

Validation refuses AIRoutes that would not be served as written (an Enforce-mode AIPolicy
forbidding a target included), AIProviders the sidecar could not use or whose declared
location their endpoint contradicts, and AIPolicies the sidecar could not apply, with messages
naming the field and the reason; Audit-mode policies refuse nothing: what they would forbid
comes back as warnings. Its failure policy is Ignore: if the operator is down, objects are still
admitted and the data plane still enforces residency on every attempt, so availability of
the API never depends on the webhook; status conditions report what it would have said.

Injection (`aiguillage.operator.injection` decides what a pod gets) sees only the pods that
opted in (`aiguillage.operator.webhookconfig` selects them) and fails closed for them: an
opted-in pod created while no operator replica answers is refused, and its controller
retries; it would otherwise run without the gateway its app calls.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aiguillage.operator import kube as k
from aiguillage.operator.admission import policy_review, residency_breaches, route_review
from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.certs import self_signed
from aiguillage.operator.errors import InjectionRefused, ManifestError
from aiguillage.operator.injection import SidecarSpec, inject
from aiguillage.operator.inventory import Inventory, parse_provider
from aiguillage.operator.providers import admission_problems
from aiguillage.operator.reconciler import Reconciler
from aiguillage.operator.webhookconfig import (
    INJECT,
    POLICIES,
    PROVIDERS,
    ROUTES,
    AdmissionPolicy,
    ManagedWebhookServer,
)

log = logging.getLogger("aiguillage.operator")
# One "no AIRoute" Event per namespace per this many seconds (a Deployment scaled to 100
# replicas must not post 100 of them).
NO_ROUTE_EVENT_EVERY = 300.0


@dataclass(frozen=True)
class WebhookOptions:
    listen: str  # host:port the webhook server binds
    host: str | None = None  # how the API server reaches it (default: the listen host)
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    managed: bool = True  # write the webhook configurations (else the chart renders them)


def prepare(memo: kopf.Memo) -> None:
    """State the admission handlers share across requests. kopf hands each admission request
    a shallow copy of the operator's memo: only objects already in it are shared."""
    memo["injections"] = Counter()
    memo["no_route_events"] = {}
    memo["event_tasks"] = set()


def server(options: WebhookOptions, policy: AdmissionPolicy, api: Any) -> kopf.WebhookServer:
    addr, _, port = options.listen.rpartition(":")
    host = options.host or addr
    tls: dict[str, Any]
    if options.certfile and options.keyfile:
        tls = {"certfile": options.certfile, "pkeyfile": options.keyfile,
               "cafile": options.cafile}  # fmt: skip
    else:
        cert = self_signed(host, Path(tempfile.mkdtemp(prefix="aiguillage-webhook-")))
        tls = {"certfile": str(cert.certfile), "pkeyfile": str(cert.keyfile),
               "cadata": cert.ca_pem}  # fmt: skip
    if options.managed:
        return ManagedWebhookServer(
            api=client.AdmissionregistrationV1Api(api), policy=policy,
            addr=addr, port=int(port), host=host, **tls,
        )  # fmt: skip
    return kopf.WebhookServer(addr=addr, port=int(port), host=host, **tls)


def _reconciler(memo: kopf.Memo) -> Reconciler | None:
    reconciler = memo.get("reconciler")
    return reconciler if isinstance(reconciler, Reconciler) and reconciler.primed else None


# Handlers are coroutines so they run on the event loop, between the watch handlers'
# updates of the inventory, never in a thread while it changes.
@kopf.on.validate(GROUP, VERSION, ROUTES.plural, id=ROUTES.id, ignore_failures=True,
                  operations=list(ROUTES.operations))  # fmt: skip
async def validate_route(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    reconciler = _reconciler(memo)
    if reconciler is None:
        warnings.append("aiguillage operator is starting: references not checked yet")
        return
    inv = await _with_unseen_providers(reconciler, body)
    review = route_review(inv, namespace or "", body)
    if review.problems:
        raise kopf.AdmissionError("; ".join(review.problems), code=422)
    warnings.extend(review.warnings)


@kopf.on.validate(GROUP, VERSION, POLICIES.plural, id=POLICIES.id, ignore_failures=True,
                  operations=list(POLICIES.operations))  # fmt: skip
async def validate_policy(body: kopf.Body, memo: kopf.Memo, warnings: list[str], **_: Any) -> None:
    """Refuse what the sidecar could not apply; warn of the targets it would take out of
    (Enforce) or record in (Audit) existing routes."""
    reconciler = _reconciler(memo)
    inv = reconciler.inv if reconciler is not None else Inventory()
    review = policy_review(inv, body)
    if review.problems:
        raise kopf.AdmissionError("; ".join(review.problems), code=422)
    warnings.extend(review.warnings)


async def _with_unseen_providers(reconciler: Reconciler, body: Mapping[str, Any]) -> Inventory:
    """The inventory plus providers the route names that the watch has not delivered yet.

    ``kubectl apply -f`` of a provider and a route together (or a GitOps sync) sends the route
    milliseconds after the provider: the watch event may not be in yet. A route is refused for
    an unknown provider only once the API server itself says the provider does not exist.
    """
    inv = reconciler.inv
    targets = ((body.get("spec") or {}).get("targets")) or []
    names = {t.get("provider") for t in targets if isinstance(t, Mapping)}
    unseen = sorted(n for n in names if isinstance(n, str) and n and n not in inv.providers)
    found = {}
    for name in unseen:
        try:
            obj = await asyncio.to_thread(
                reconciler.kube.custom.get_cluster_custom_object,
                GROUP, VERSION, PROVIDERS.plural, name,
            )  # fmt: skip
            found[name] = parse_provider(obj)
        except ApiException as exc:
            if exc.status != 404:
                raise
        except ManifestError:
            continue  # invalid: the route's check reports the provider as unusable
    if not found:
        return inv
    return dataclasses.replace(inv, providers={**inv.providers, **found})


@kopf.on.validate(GROUP, VERSION, PROVIDERS.plural, id=PROVIDERS.id, ignore_failures=True,
                  operations=list(PROVIDERS.operations))  # fmt: skip
async def validate_provider(
    body: kopf.Body,
    name: str | None,
    memo: kopf.Memo,
    warnings: list[str],
    **kwargs: Any,
) -> None:
    """Refuse options the sidecar could not use and a location the endpoint contradicts;
    on update, warn when the provider's new residency takes it out of routes' rules."""
    try:
        updated = parse_provider(body)
    except ManifestError:
        return  # the API server's schema validation reports it
    problems = admission_problems(updated.spec)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=422)
    reconciler = _reconciler(memo)
    if reconciler is None or not name or kwargs.get("operation") != "UPDATE":
        return
    inv = dataclasses.replace(reconciler.inv, providers={**reconciler.inv.providers, name: updated})
    breaches = residency_breaches(inv, name)
    warnings.extend(f"{b} (this target will no longer be used)" for b in breaches)


@kopf.on.mutate(INJECT.group, "v1", INJECT.plural, id=INJECT.id, side_effects=True,
                operations=list(INJECT.operations))  # fmt: skip
async def inject_sidecar(
    body: kopf.Body,
    patch: kopf.Patch,
    namespace: str | None,
    dryrun: bool,
    memo: kopf.Memo,
    warnings: list[str],
    **_: Any,
) -> None:
    spec = memo.get("sidecar")
    if not isinstance(spec, SidecarSpec):
        return  # injection is off (no --sidecar-image): admit the pod as it is
    counts: Counter[str] = memo.setdefault("injections", Counter())
    try:
        result = inject(body, spec)
    except InjectionRefused as exc:
        counts["refused"] += 1
        raise kopf.AdmissionError(f"aiguillage sidecar injection: {exc}", code=422) from exc
    counts["injected" if result.injected else "skipped"] += 1
    if not result.injected:
        return
    patch.fns.append(lambda raw: _replace(raw, result.pod))
    warnings.extend(result.warnings)
    reconciler = _reconciler(memo)
    if namespace and reconciler is not None and not reconciler.inv.routes_in(namespace):
        message = (
            f"namespace {namespace} has no AIRoute: its aiguillage sidecar serves no model "
            "until one is applied"
        )
        warnings.append(message)
        if not dryrun:
            _no_route_event(memo, reconciler, body, namespace, message)


def _replace(raw: Any, pod: Mapping[str, Any]) -> None:
    raw.clear()
    raw.update(copy.deepcopy(dict(pod)))


def _no_route_event(
    memo: kopf.Memo, reconciler: Reconciler, pod: Mapping[str, Any], namespace: str, message: str
) -> None:
    """Post a Warning Event on the pod's controller (a ReplicaSet, a Job...) or, for a bare
    pod, on the pod by name: a pod being admitted has no uid yet."""
    posted: dict[str, float] = memo.setdefault("no_route_events", {})
    now = time.monotonic()
    if now - posted.get(namespace, -NO_ROUTE_EVENT_EVERY) < NO_ROUTE_EVENT_EVERY:
        return
    posted[namespace] = now
    meta = pod.get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is not None:
        about = {"name": owner.get("name"), "namespace": namespace, "uid": owner.get("uid")}
        ref = {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"), "metadata": about}
    else:
        name = meta.get("name") or meta.get("generateName") or "pod"
        ref = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
        }
    task = asyncio.create_task(k.post_event(reconciler.kube, ref, "Warning", "NoAIRoute", message))
    tasks: set[asyncio.Task[None]] = memo.setdefault("event_tasks", set())
    tasks.add(task)
    task.add_done_callback(lambda t: _event_done(tasks, t))


def _event_done(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not post the NoAIRoute event: %s", task.exception())
