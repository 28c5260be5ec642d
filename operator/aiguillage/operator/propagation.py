"""Config propagation: make running pods see a namespace's new config within seconds.

The kubelet refreshes mounted ConfigMaps and Secrets only on its periodic pod sync (70–90 s
measured on this project's node), but it syncs a pod at once when the pod object changes. So
after the reconciler writes a namespace's ConfigMap and Secret, this patches one annotation,
``aiguillage.dev/outputs-hash`` (the version of the outputs the pod should serve, the same
value as on the ConfigMap), on that namespace's injected pods; their sidecars reload the
files as soon as the kubelet has rewritten them.

Bounded API load: pods are listed by label (``aiguillage.dev/injected=true``) as metadata only,
in pages; a pod already at the wanted version is not patched; patches go out at most
``patches_per_second`` (and ``parallel`` at a time) across all namespaces; a namespace written
again while its pods are being patched is redone once with its newest version, never once per
intermediate write. Permissions: ``list`` and ``patch`` on pods; the patch is a JSON merge
patch of that one annotation (the chart can also pin that with a ValidatingAdmissionPolicy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from aiguillage.operator.injection import INJECTED_LABEL

log = logging.getLogger("aiguillage.operator")

OUTPUTS_ANNOTATION = "aiguillage.dev/outputs-hash"
PAGE = 500
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


class RateLimiter:
    """At most ``rate`` acquisitions per second, evenly spaced (a token bucket of size 1)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class Propagator:
    core: Any  # kubernetes.client.CoreV1Api
    patches_per_second: float = 20.0
    parallel: int = 4
    wanted: dict[str, str] = field(default_factory=dict)  # namespace -> outputs hash to reach
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    patched: int = 0  # pods patched since start (for tests and logs)
    _limiter: RateLimiter | None = None

    def written(self, namespace: str, outputs_hash: str) -> None:
        """The reconciler wrote new outputs for ``namespace`` (called from its event loop)."""
        self.wanted[namespace] = outputs_hash
        self.wake.set()

    async def run(self) -> None:
        self._limiter = RateLimiter(self.patches_per_second)
        failures = 0
        retry: dict[str, str] = {}
        while True:
            if not retry:
                await self.wake.wait()
            self.wake.clear()
            batch, self.wanted = {**retry, **self.wanted}, {}
            retry = {}
            for namespace, outputs_hash in sorted(batch.items()):
                try:
                    await self.propagate(namespace, outputs_hash)
                except Exception as exc:
                    log.warning("propagating config to pods in %s failed (%s); will retry",
                                namespace, exc)  # fmt: skip
                    retry[namespace] = outputs_hash
            if retry:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
            else:
                failures = 0

    async def propagate(self, namespace: str, outputs_hash: str) -> int:
        """Patch the namespace's injected pods that are not at ``outputs_hash``; how many."""
        stale = [
            meta["name"]
            for meta in await self._injected_pods(namespace)
            if not meta.get("deletionTimestamp")
            and (meta.get("annotations") or {}).get(OUTPUTS_ANNOTATION) != outputs_hash
        ]
        if not stale:
            return 0
        limiter = self._limiter or RateLimiter(self.patches_per_second)
        gate = asyncio.Semaphore(self.parallel)
        body = {"metadata": {"annotations": {OUTPUTS_ANNOTATION: outputs_hash}}}
        done = 0

        async def one(name: str) -> None:
            nonlocal done
            async with gate:
                if self.wanted.get(namespace, outputs_hash) != outputs_hash:
                    return  # written again meanwhile: the next round patches to the newest
                await limiter.acquire()
                try:
                    await asyncio.to_thread(
                        self.core.patch_namespaced_pod, name, namespace, body,
                        _content_type="application/merge-patch+json",
                    )  # fmt: skip
                except ApiException as exc:
                    if exc.status == 404:  # deleted meanwhile
                        return
                    raise
                done += 1

        await asyncio.gather(*(one(name) for name in stale))
        self.patched += done
        log.info("namespace %s: %d pod(s) told to load outputs %s", namespace, done,
                 outputs_hash[:12])  # fmt: skip
        return done

    async def _injected_pods(self, namespace: str) -> list[dict[str, Any]]:
        """Metadata of the namespace's injected pods, page by page (no pod specs fetched)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": f"{INJECTED_LABEL}=true", "limit": PAGE}
            if token:
                kwargs["_continue"] = token
            response = await asyncio.to_thread(
                self.core.list_namespaced_pod, namespace,
                _headers={"Accept": METADATA_ONLY}, _preload_content=False, **kwargs,
            )  # fmt: skip
            page = json.loads(response.data)
            out.extend(item.get("metadata") or {} for item in page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return out
