"""The few Kubernetes API calls the operator makes, behind async functions.

The official client is synchronous; calls run in a worker thread so the kopf
event loop never blocks. Errors are left as ``ApiException`` for the caller,
which retries (the reconciler is level-triggered, so a retry is always safe).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from aiguillage.operator.api.common import GROUP, VERSION

MANAGED_BY = {"app.kubernetes.io/managed-by": "aiguillage"}


class Kube:
    def __init__(self) -> None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        conf = client.Configuration.get_default_copy()
        conf.connection_pool_maxsize = 16  # parallel renders share the client
        api = client.ApiClient(conf)
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    async def list_cluster(self, plural: str) -> list[dict[str, Any]]:
        result: Any = await asyncio.to_thread(
            self.custom.list_cluster_custom_object, GROUP, VERSION, plural
        )
        return list(result.get("items", []))

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Every Namespace, as {"metadata": {"name", "labels"}} (all a policy matches on)."""
        result: Any = await asyncio.to_thread(self.core.list_namespace)
        return [
            {"metadata": {"name": ns.metadata.name, "labels": dict(ns.metadata.labels or {})}}
            for ns in result.items
        ]

    async def list_secrets(self, namespace: str) -> list[dict[str, Any]]:
        result = await asyncio.to_thread(self.core.list_namespaced_secret, namespace)
        sanitize: Any = self.api.sanitize_for_serialization
        return [sanitize(s) for s in result.items]

    async def read_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            cm = await asyncio.to_thread(self.core.read_namespaced_config_map, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(cm.data or {})

    async def apply_config_map(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        body = {"metadata": {"name": name, "namespace": namespace, **meta}, "data": data}
        await self._upsert(
            self.core.replace_namespaced_config_map,
            self.core.create_namespaced_config_map,
            namespace, name, body,
        )  # fmt: skip

    async def apply_secret(
        self, namespace: str, name: str, data: dict[str, str], meta: dict[str, Any]
    ) -> None:
        body = {
            "metadata": {"name": name, "namespace": namespace, **meta},
            "type": "Opaque",
            "data": data,
        }
        await self._upsert(
            self.core.replace_namespaced_secret,
            self.core.create_namespaced_secret,
            namespace, name, body,
        )  # fmt: skip

    async def _upsert(
        self, replace: Any, create: Any, namespace: str, name: str, body: Any
    ) -> None:
        try:
            await asyncio.to_thread(replace, name, namespace, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await asyncio.to_thread(create, namespace, body)

    async def delete_outputs(self, namespace: str, config_map: str, secret: str) -> None:
        for call, name in (
            (self.core.delete_namespaced_config_map, config_map),
            (self.core.delete_namespaced_secret, secret),
        ):
            try:
                await asyncio.to_thread(call, name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    async def patch_status(
        self, plural: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> None:
        body = {"status": status}
        try:
            if namespace is None:
                await asyncio.to_thread(
                    self.custom.patch_cluster_custom_object_status,
                    GROUP, VERSION, plural, name, body,
                )  # fmt: skip
            else:
                await asyncio.to_thread(
                    self.custom.patch_namespaced_custom_object_status,
                    GROUP, VERSION, namespace, plural, name, body,
                )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report on
                raise


async def read_secret_data(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    try:
        secret = await asyncio.to_thread(kube.core.read_namespaced_secret, name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {key: str(value) for key, value in (secret.data or {}).items()}


async def managed_outputs(kube: Kube, config_map: str, annotation: str) -> dict[str, str | None]:
    """Namespaces holding this operator's ConfigMap, each with the value of ``annotation``
    on it (None when absent): one list call at start-up instead of reads per namespace."""
    selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
    cms: Any = await asyncio.to_thread(
        kube.core.list_config_map_for_all_namespaces, label_selector=selector
    )
    return {
        cm.metadata.namespace: (cm.metadata.annotations or {}).get(annotation)
        for cm in cms.items
        if cm.metadata.name == config_map
    }


async def post_event(
    kube: Kube, obj: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    """A core/v1 Event about ``obj`` (shown by ``kubectl describe`` and ``get events``)."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    stamp = datetime.now(UTC)
    body: Any = {
        "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": stamp.isoformat(),
        "lastTimestamp": stamp.isoformat(),
        "count": 1,
        "source": {"component": "aiguillage-operator"},
        "reportingComponent": "aiguillage-operator",
    }
    await asyncio.to_thread(kube.core.create_namespaced_event, namespace, body)
