"""Leader election on a ``coordination.k8s.io`` Lease, the way client-go's leaderelection works.

With two operator replicas, both watch everything and both serve the admission webhooks (so
admission stays up while one restarts), but only the holder of the Lease writes: renders,
status, config propagation. kopf's own peering is not used for this because it pauses the
standby's watches, which would leave the standby's webhook judging routes against a stale
inventory.

The Lease is judged by what this replica observed, never by comparing clocks: a holder is gone
when its Lease's ``resourceVersion`` has not changed for ``lease_seconds`` on our monotonic
clock. A leader that cannot renew for ``renew_deadline`` seconds stops leading before anyone
else can take over (``renew_deadline < lease_seconds``). On shutdown it releases the Lease so
the standby takes over at its next retry instead of waiting for expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("aiguillage.operator")

LEASE_NAME = "aiguillage-operator"


def own_identity() -> str:
    """The pod's name (from the downward API) plus a random suffix: unique across restarts."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    api: Any  # client.CoordinationV1Api
    namespace: str
    name: str = LEASE_NAME
    identity: str = field(default_factory=own_identity)
    lease_seconds: float = 15.0
    renew_deadline: float = 10.0
    retry_seconds: float = 2.0
    leading: bool = False
    _observed: tuple[str | None, float] = (None, 0.0)  # (resourceVersion, when we saw it)
    _last_holder: str | None = None  # holder of the Lease when we last read or wrote it

    @classmethod
    def for_api(cls, api_client: Any, namespace: str, **kwargs: Any) -> LeaderElector:
        return cls(client.CoordinationV1Api(api_client), namespace, **kwargs)

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: wait for the Lease, run ``lead()`` while holding it, cancel it when lost."""
        try:
            while True:
                await self._acquire()
                self.leading = True
                log.info("leading (lease %s/%s as %s)", self.namespace, self.name, self.identity)
                task = asyncio.create_task(lead())
                try:
                    await self._keep_renewing(task)
                finally:
                    self.leading = False
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                log.warning("lost the lease %s/%s: stopped writing", self.namespace, self.name)
        finally:
            if self.leading or self._held_by_us():
                await self._release()

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try_acquire_or_renew():
                    return
            except Exception as exc:  # the API server is away: keep trying
                log.warning("cannot read the lease: %s", exc)
            await asyncio.sleep(self.retry_seconds)

    async def _keep_renewing(self, task: asyncio.Task[None]) -> None:
        renewed = time.monotonic()
        while not task.done():
            await asyncio.sleep(self.retry_seconds)
            try:
                ok = await self._try_acquire_or_renew()
            except Exception as exc:  # the API server is away: keep trying until the deadline
                log.warning("cannot renew the lease: %s", exc)
                ok = False
            if ok:
                renewed = time.monotonic()
            elif time.monotonic() - renewed > self.renew_deadline:
                return
        task.result()  # the leading task ended on its own: surface its error

    def _held_by_us(self) -> bool:
        return self._last_holder == self.identity

    async def _try_acquire_or_renew(self) -> bool:
        now = _now()
        try:
            lease = await asyncio.to_thread(
                self.api.read_namespaced_lease, self.name, self.namespace
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": int(self.lease_seconds),
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            try:
                await asyncio.to_thread(self.api.create_namespaced_lease, self.namespace, body)
            except ApiException as exc2:
                if exc2.status == 409:  # another replica created it first
                    return False
                raise
            self._last_holder = self.identity
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        self._last_holder = holder
        version = lease.metadata.resource_version
        if version != self._observed[0]:
            self._observed = (version, time.monotonic())
        if holder and holder != self.identity:
            duration = spec.lease_duration_seconds or self.lease_seconds
            if time.monotonic() - self._observed[1] < duration:
                return False  # someone else holds it and renews it
        transitions = spec.lease_transitions or 0
        body = {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": version,
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": _stamp(spec.acquire_time) if holder == self.identity else now,
                "renewTime": now,
                "leaseTransitions": transitions if holder == self.identity else transitions + 1,
            },
        }
        try:
            updated = await asyncio.to_thread(
                self.api.replace_namespaced_lease, self.name, self.namespace, body
            )
        except ApiException as exc:
            if exc.status == 409:  # changed since we read it: someone else renewed or took it
                return False
            raise
        self._observed = (updated.metadata.resource_version, time.monotonic())
        self._last_holder = self.identity
        return True

    async def _release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) so a standby need not wait."""
        try:
            lease = await asyncio.to_thread(
                self.api.read_namespaced_lease, self.name, self.namespace
            )
            if lease.spec.holder_identity != self.identity:
                return
            body = {
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": lease.metadata.resource_version,
                },
                "spec": {
                    "holderIdentity": None,
                    "leaseDurationSeconds": 1,
                    "acquireTime": _stamp(lease.spec.acquire_time),
                    "renewTime": _now(),
                    "leaseTransitions": lease.spec.lease_transitions or 0,
                },
            }
            await asyncio.to_thread(
                self.api.replace_namespaced_lease, self.name, self.namespace, body
            )
            log.info("released the lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # best effort: it expires anyway
            log.warning("could not release the lease: %s", exc)


def _stamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
