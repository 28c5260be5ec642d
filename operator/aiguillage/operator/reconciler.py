"""Level-triggered rendering: watch events mark namespaces dirty, one worker renders them.

Watch events only update the in-memory :class:`Inventory` and say which
namespaces a change affects; the worker re-renders exactly those from the whole
inventory, so the output never depends on the order events arrived in. An AIPolicy
change affects the namespaces it selected before and selects now; a Namespace's label
change affects that namespace. Output
is written only when it differs from what the namespace already has, and a
namespace's outputs are deleted only once a complete listing (taken at start-up,
before anything is rendered) shows it has no routes left.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiguillage.operator import kube as k
from aiguillage.operator.auditkeys import AuditKeys
from aiguillage.operator.errors import ManifestError
from aiguillage.operator.inventory import (
    DEFAULT_OPERATOR_NAMESPACE,
    Inventory,
    Policy,
    parse_policy,
    parse_provider,
    parse_route,
    parse_secret,
)
from aiguillage.operator.policies import describe_data_protection, describe_limits
from aiguillage.operator.policy_status import policy_status
from aiguillage.operator.propagation import OUTPUTS_ANNOTATION
from aiguillage.operator.providers import conditions as provider_conditions
from aiguillage.operator.render import (
    POLICY_COMPLIANT,
    READY,
    Condition,
    Rendered,
    render_namespace,
)
from aiguillage.operator.status import flip, merge_conditions, same_status
from aiguillage.sidecar.config import CONFIG_FILE, SidecarConfig

CONFIG_MAP = "aiguillage-config"
SECRET = "aiguillage-credentials"
HASH_ANNOTATION = "aiguillage.dev/config-hash"
RETRY_SECONDS = (0.5, 1, 2, 5, 10)
PARALLEL_NAMESPACES = 8

log = logging.getLogger("aiguillage.operator")


def operator_namespace() -> str:
    return os.environ.get("AIGUILLAGE_OPERATOR_NAMESPACE", DEFAULT_OPERATOR_NAMESPACE)


@dataclass
class ObjectState:
    ref: dict[str, Any]  # apiVersion, kind, metadata: name/namespace/uid (for events)
    generation: int
    status: dict[str, Any]
    invalid: ManifestError | None = None


def _ref(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid") if meta.get(k)},
    }


def _digest(config_json: str, credentials: Mapping[str, str]) -> str:
    h = hashlib.sha256(config_json.encode())
    for key in sorted(credentials):
        h.update(b"\0" + key.encode() + b"\0" + credentials[key].encode())
    return h.hexdigest()


@dataclass
class Reconciler:
    kube: k.Kube
    inv: Inventory = field(default_factory=lambda: Inventory(operator_namespace()))
    routes: dict[tuple[str, str], ObjectState] = field(default_factory=dict)
    providers: dict[str, ObjectState] = field(default_factory=dict)
    policies: dict[str, ObjectState] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    written: dict[str, str] = field(default_factory=dict)  # namespace -> digest of outputs
    # namespace -> the config last rendered for it (what the spend refresher reads).
    configs: dict[str, SidecarConfig] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    primed: bool = False
    renders: int = 0
    # Makes each namespace's audit signing key (None: not managed, e.g. in tests).
    audit_keys: AuditKeys | None = None
    # Told (namespace, outputs hash) after each write: config propagation to running pods.
    on_written: Callable[[str, str], None] | None = None
    _event_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # ----- events -------------------------------------------------------------------------

    def mark(self, *namespaces: str) -> None:
        self.dirty.update(namespaces)
        self.wake.set()

    def _namespaces_using(self, provider: str) -> set[str]:
        return {
            ns for (ns, _), r in self.inv.routes.items()
            if any(t.provider == provider for t in r.spec.targets)
        } | {ns for (ns, _), st in self.routes.items() if st.invalid is not None}  # fmt: skip

    def on_provider(self, body: Mapping[str, Any], deleted: bool) -> None:
        name = body["metadata"]["name"]
        generation = int(body["metadata"].get("generation") or 0)
        previous = self.providers.get(name)
        if deleted:
            self.providers.pop(name, None)
            self.inv.providers.pop(name, None)
        else:
            state = ObjectState(_ref(body), generation, dict(body.get("status") or {}))
            self.providers[name] = state
            if previous is not None and previous.generation == generation and self.primed:
                return  # a status-only change
            try:
                self.inv.providers[name] = parse_provider(body)
            except ManifestError as exc:
                state.invalid = exc
                self.inv.providers.pop(name, None)
        self.mark(*self._namespaces_using(name))
        self.wake.set()

    def on_route(self, body: Mapping[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        generation = int(meta.get("generation") or 0)
        previous = self.routes.get(key)
        if deleted:
            self.routes.pop(key, None)
            self.inv.routes.pop(key, None)
        else:
            state = ObjectState(_ref(body), generation, dict(body.get("status") or {}))
            self.routes[key] = state
            if previous is not None and previous.generation == generation and self.primed:
                return
            try:
                self.inv.routes[key] = parse_route(body, key[0])
            except ManifestError as exc:
                state.invalid = exc
                self.inv.routes.pop(key, None)
        self.mark(key[0])

    def _namespaces_selected(self, policy: Policy | None) -> set[str]:
        """Namespaces with routes (or outputs) ``policy`` selects; all of them when its
        selector is not known."""
        candidates = self.inv.route_namespaces() | set(self.written)
        if policy is None:
            return candidates
        return {ns for ns in candidates if policy.selects(self.inv.namespaces.get(ns, {}))}

    def on_policy(self, body: Mapping[str, Any], deleted: bool) -> None:
        name = body["metadata"]["name"]
        generation = int(body["metadata"].get("generation") or 0)
        previous = self.policies.get(name)
        before = self.inv.policies.get(name)
        affected = self._namespaces_selected(before) if before or previous else set()
        if deleted:
            self.policies.pop(name, None)
            self.inv.policies.pop(name, None)
        else:
            state = ObjectState(_ref(body), generation, dict(body.get("status") or {}))
            self.policies[name] = state
            if previous is not None and previous.generation == generation and self.primed:
                state.invalid = previous.invalid
                return  # a status-only change
            try:
                self.inv.policies[name] = parse_policy(body)
            except ManifestError as exc:
                state.invalid = exc
                self.inv.policies.pop(name, None)
            affected |= self._namespaces_selected(self.inv.policies.get(name))
        self.mark(*affected)
        self.wake.set()

    def on_namespace(self, body: Mapping[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        name = meta["name"]
        before = self.inv.namespaces.get(name)
        if deleted:
            self.inv.namespaces.pop(name, None)
        else:
            self.inv.namespaces[name] = dict(meta.get("labels") or {})
        if before == self.inv.namespaces.get(name):
            return
        if self.inv.policies and (name in self.inv.route_namespaces() or name in self.written):
            self.mark(name)
        self.wake.set()  # policies' status counts the namespaces they select

    def on_secret(self, body: Mapping[str, Any], deleted: bool) -> None:
        meta = body["metadata"]
        if meta.get("namespace") != self.inv.operator_namespace:
            return
        key = (meta["namespace"], meta["name"])
        before = self.inv.secrets.get(key)
        if deleted:
            self.inv.secrets.pop(key, None)
        else:
            self.inv.secrets[key] = parse_secret(body, key[0])
        after = self.inv.secrets.get(key)
        if (before and before.data) == (after and after.data):
            return
        users = [
            name for name, p in self.inv.providers.items()
            if p.spec.auth.secret_name() == key[1]
        ]  # fmt: skip
        for name in users:
            self.mark(*self._namespaces_using(name))
        for policy in self.inv.policies.values():
            store = policy.spec.shared_store
            if store and store.password_secret_ref and store.password_secret_ref.name == key[1]:
                self.mark(*self._namespaces_selected(policy))
        self.wake.set()

    # ----- start-up -----------------------------------------------------------------------

    async def prime(self) -> None:
        """Read everything once before the first render, so a half-known world is never
        rendered (and nothing is deleted because it was not seen yet)."""
        providers = await self.kube.list_cluster("aiproviders")
        routes = await self.kube.list_cluster("airoutes")
        policies = await self.kube.list_cluster("aipolicies")
        namespaces = await self.kube.list_namespaces()
        secrets = await self.kube.list_secrets(self.inv.operator_namespace)
        outputs = await k.managed_outputs(self.kube, CONFIG_MAP, OUTPUTS_ANNOTATION)
        existing = set(outputs)
        # The ConfigMap names the digest of what was written with it, Secret included: no
        # need to read every namespace's Secret (nor the right to list them cluster-wide).
        self.written.update({ns: digest for ns, digest in outputs.items() if digest})
        for body in namespaces:
            self.on_namespace(body, deleted=False)
        for body in secrets:
            self.on_secret(body, deleted=False)
        for body in policies:
            self.on_policy({"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIPolicy", **body},
                           deleted=False)  # fmt: skip
        for body in providers:
            self.on_provider({"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIProvider",
                              **body}, deleted=False)  # fmt: skip
        for body in routes:
            self.on_route({"apiVersion": "aiguillage.dev/v1alpha1", "kind": "AIRoute", **body},
                          deleted=False)  # fmt: skip
        self.primed = True
        self.mark(*existing, *self.inv.route_namespaces())
        log.info(
            "primed: %d providers, %d routes in %d namespaces, %d policies",
            len(self.inv.providers), len(self.inv.routes), len(self.inv.route_namespaces()),
            len(self.inv.policies),
        )  # fmt: skip

    # ----- the worker ---------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not self.primed:
                continue
            batch, self.dirty = self.dirty, set()
            failed = await self._reconcile_batch(batch)
            try:
                await self.reconcile_providers()
                await self.reconcile_policies()
            except Exception:
                log.exception("updating provider or policy status failed; will retry")
                failed.add("")
            if failed:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                await asyncio.sleep(delay)
                self.mark(*(ns for ns in failed if ns))
                self.wake.set()
            else:
                failures = 0

    async def _reconcile_batch(self, batch: set[str]) -> set[str]:
        """Render namespaces several at once (they are independent and API calls dominate);
        return those that failed."""
        limit = asyncio.Semaphore(PARALLEL_NAMESPACES)
        failed: set[str] = set()

        async def one(namespace: str) -> None:
            async with limit:
                try:
                    await self.reconcile(namespace)
                except Exception:
                    log.exception("rendering namespace %s failed; will retry", namespace)
                    failed.add(namespace)

        await asyncio.gather(*(one(ns) for ns in sorted(batch)))
        return failed

    async def reconcile(self, namespace: str) -> None:
        self.renders += 1
        rendered = render_namespace(self.inv, namespace)
        invalid = [
            key for key, st in list(self.routes.items()) if key[0] == namespace and st.invalid
        ]
        if not rendered.reports and not invalid:
            await self.kube.delete_outputs(namespace, CONFIG_MAP, SECRET)
            self.written.pop(namespace, None)
            self.configs.pop(namespace, None)
            return
        if self.audit_keys is not None:
            # Before the config: the write makes propagation refresh the pods' mounts, and a
            # sidecar that gets its routes must have its signing key by then too (a checkpoint
            # written without one leaves its chain unverifiable for good).
            await self.audit_keys.ensure(namespace)
        await self._write(rendered)
        self.configs[namespace] = rendered.config
        updates = []
        policies = [p.name for p in rendered.force.policies]
        limits = describe_limits(rendered.force.limits)
        for name, report in rendered.reports.items():
            served = rendered.config.routes.get(report.route.spec.model)
            usable = len(served.targets) if served and served.name == name else 0
            updates.append(
                self._route_status(
                    (namespace, name),
                    report.conditions(),
                    rendered.config.hash,
                    f"{usable}/{len(report.route.spec.targets)}",
                    {
                        "policies": policies,
                        "limits": limits,
                        "dataProtection": describe_data_protection(report.data_protection),
                    },
                )
            )
        for key in invalid:
            state = self.routes.get(key)  # it may have been deleted while writing
            exc = state.invalid if state else None
            if exc is None:
                continue
            message = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems)
            conditions = [
                Condition("Accepted", False, "InvalidSpec", message),
                Condition("Ready", False, "NotServed", message),
            ]
            updates.append(self._route_status(key, conditions, rendered.config.hash, ""))
        # Status patches of different routes are independent.
        await asyncio.gather(*updates)

    async def _write(self, rendered: Rendered) -> None:
        ns = rendered.namespace
        config_json = rendered.config_json.decode()
        creds = {key: base64.b64encode(v).decode() for key, v in rendered.credentials.items()}
        digest = _digest(config_json, creds)
        if ns not in self.written:
            current_cm = await self.kube.read_config_map(ns, CONFIG_MAP)
            current_secret = await k.read_secret_data(self.kube, ns, SECRET)
            if current_cm is not None and current_secret is not None:
                self.written[ns] = _digest(current_cm.get(CONFIG_FILE, ""), current_secret)
        if self.written.get(ns) == digest:
            return
        meta = {
            "labels": dict(k.MANAGED_BY),
            "annotations": {HASH_ANNOTATION: rendered.config.hash, OUTPUTS_ANNOTATION: digest},
            "ownerReferences": [
                {
                    "apiVersion": "aiguillage.dev/v1alpha1",
                    "kind": "AIRoute",
                    "name": name,
                    "uid": self.routes[(ns, name)].ref["metadata"].get("uid"),
                }
                for name in sorted(rendered.reports)
                if self.routes.get((ns, name))
                and self.routes[(ns, name)].ref["metadata"].get("uid")
            ],
        }
        # Credentials first: a config never names a credential the pod cannot have yet.
        await self.kube.apply_secret(ns, SECRET, creds, meta)
        await self.kube.apply_config_map(ns, CONFIG_MAP, {CONFIG_FILE: config_json}, meta)
        self.written[ns] = digest
        log.info("namespace %s: wrote config %s", ns, rendered.config.hash[:12])
        if self.on_written is not None:
            self.on_written(ns, digest)

    async def _route_status(
        self,
        key: tuple[str, str],
        conditions: list[Condition],
        config_hash: str,
        targets: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        state = self.routes.get(key)
        if state is None:
            return
        current = state.status.get("conditions") or []
        merged = merge_conditions(conditions, current, state.generation)
        desired = {
            "observedGeneration": state.generation,
            "conditions": merged,
            "configHash": config_hash,
            "targets": targets,
            **(extra or {}),
        }
        if same_status(state.status, desired):
            return
        await self.kube.patch_status("airoutes", key[0], key[1], desired)
        state.status = {**state.status, **desired}
        self._event_on_flip(state, current, merged)

    def _event_on_flip(
        self, state: ObjectState, before: list[dict[str, Any]], after: list[dict[str, Any]]
    ) -> None:
        """An Event for each transition of Ready or PolicyCompliant."""
        for type_ in (POLICY_COMPLIANT, READY):
            flipped = flip(before, after, type_)
            if flipped is None:
                continue
            new = not any(c.get("type") == type_ for c in before)
            if type_ == POLICY_COMPLIANT and new and flipped == "True":
                continue  # a new route complying is no news
            cond = next(c for c in after if c["type"] == type_)
            kind = "Normal" if flipped == "True" else "Warning"
            task = asyncio.create_task(
                k.post_event(self.kube, state.ref, kind, cond["reason"], cond["message"])
            )
            self._event_tasks.add(task)
            task.add_done_callback(self._event_done)

    def _event_done(self, task: asyncio.Task[None]) -> None:
        self._event_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Events are informative: a failed post never fails a render.
            log.warning("could not post event: %s", task.exception())

    async def reconcile_providers(self) -> None:
        used: dict[str, list[str]] = {}
        for route in list(self.inv.routes.values()):
            for t in route.spec.targets:
                used.setdefault(t.provider, []).append(route.key)
        # A snapshot: watch handlers may add or remove providers while a patch is awaited.
        for name, state in list(self.providers.items()):
            provider = self.inv.providers.get(name)
            if state.invalid is not None or provider is None:
                message = "; ".join(
                    f"{p.field}: {p.reason}"
                    for p in (state.invalid.problems if state.invalid else [])
                )
                conditions = [Condition("Ready", False, "InvalidSpec", message)]
            else:
                conditions = [Condition(*c) for c in provider_conditions(self.inv, name)]
            current = state.status.get("conditions") or []
            merged = merge_conditions(conditions, current, state.generation)
            desired = {
                "observedGeneration": state.generation,
                "conditions": merged,
                "usedBy": sorted(set(used.get(name, []))),
                "models": len(provider.spec.models) if provider else 0,
            }
            if same_status(state.status, desired):
                continue
            await self.kube.patch_status("aiproviders", None, name, desired)
            state.status = {**state.status, **desired}
            self._event_on_flip(state, current, merged)

    async def reconcile_policies(self) -> None:
        # A snapshot: watch handlers may add or remove policies while a patch is awaited.
        for name, state in list(self.policies.items()):
            policy = self.inv.policies.get(name)
            if state.invalid is not None or policy is None:
                message = "; ".join(
                    f"{p.field}: {p.reason}"
                    for p in (state.invalid.problems if state.invalid else [])
                )
                conditions = [
                    Condition("Accepted", False, "InvalidSpec", message),
                    Condition("Ready", False, "InvalidSpec", message),
                ]
                fields: dict[str, Any] = {}
            else:
                conditions, fields = policy_status(self.inv, policy)
            current = state.status.get("conditions") or []
            merged = merge_conditions(conditions, current, state.generation)
            desired = {"observedGeneration": state.generation, "conditions": merged, **fields}
            if same_status(state.status, desired):
                continue
            await self.kube.patch_status("aipolicies", None, name, desired)
            state.status = {**state.status, **desired}
            self._event_on_flip(state, current, merged)
