"""Watch the Secrets of the operator's own namespace (provider keys), and only those.

kopf watches a resource in every namespace it serves, and this operator serves the whole
cluster (AIRoutes live in app namespaces), so a kopf handler on Secrets would need the right
to read every Secret of the cluster. This small list-then-watch loop needs only ``get``,
``list`` and ``watch`` on Secrets in the operator's namespace (a Role, not a ClusterRole).

It runs in a daemon thread (the Kubernetes client blocks) and hands each event to the event
loop. A watch that ends (server timeout) resumes from the last resourceVersion; one that is too
old (410 Gone) or fails starts over with a fresh list, so no change is ever missed for long.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

log = logging.getLogger("aiguillage.operator")

WATCH_SECONDS = 60
RETRY_SECONDS = 2.0

OnSecret = Callable[[Mapping[str, Any], bool], None]  # (body, deleted)


class SecretWatch:
    def __init__(self, core: Any, namespace: str, on_secret: OnSecret) -> None:
        self.core = core  # kubernetes.client.CoreV1Api
        self.namespace = namespace
        self.on_secret = on_secret
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _deliver(self, body: Mapping[str, Any], deleted: bool) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.on_secret, body, deleted)

    def _run(self) -> None:
        from kubernetes import watch

        sanitize = self.core.api_client.sanitize_for_serialization
        version: str | None = None
        known: dict[str, dict[str, Any]] = {}  # name -> last body delivered
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.core.list_namespaced_secret(self.namespace)
                    bodies = [sanitize(item) for item in listed.items]
                    names = {b["metadata"]["name"] for b in bodies}
                    # Deleted while no watch was open: a relist is the only way to notice.
                    for name in set(known) - names:
                        self._deliver(known.pop(name), True)
                    for body in bodies:
                        known[body["metadata"]["name"]] = body
                        self._deliver(body, False)
                    version = listed.metadata.resource_version
                stream = watch.Watch().stream(
                    self.core.list_namespaced_secret, self.namespace,
                    resource_version=version, timeout_seconds=WATCH_SECONDS,
                )  # fmt: skip
                for event in stream:
                    if self._stop.is_set():
                        return
                    kind = event["type"]
                    if kind == "ERROR":
                        version = None  # usually 410 Gone: list again
                        break
                    body = sanitize(event["object"])
                    version = body["metadata"].get("resourceVersion") or version
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        name = body["metadata"]["name"]
                        if kind == "DELETED":
                            known.pop(name, None)
                        else:
                            known[name] = body
                        self._deliver(body, kind == "DELETED")
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                    continue
                log.warning("watching Secrets in %s failed (%s); retrying", self.namespace, exc)
                version = None
                self._stop.wait(RETRY_SECONDS)
            except Exception as exc:  # connection reset, API server restart...
                log.warning("watching Secrets in %s failed (%s); retrying", self.namespace, exc)
                version = None
                self._stop.wait(RETRY_SECONDS)
