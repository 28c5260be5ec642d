"""Config propagation (``operator/propagation.py``) against a fake CoreV1Api: which pods are
patched, how, how fast at most, and what happens when a namespace is written again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from aiguillage.operator import propagation
from aiguillage.operator.propagation import OUTPUTS_ANNOTATION, Propagator, RateLimiter


@dataclass
class Response:
    data: bytes


@dataclass
class FakeCore:
    """Pods by namespace (metadata only), and the calls made."""

    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lists: list[dict[str, Any]] = field(default_factory=list)
    patches: list[tuple[str, str, dict[str, Any], str, float]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    before_patch: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def list_namespaced_pod(self, namespace: str, **kw: Any) -> Response:
        self.lists.append({"namespace": namespace, **kw})
        assert kw["label_selector"] == "aiguillage.dev/injected=true"
        assert kw["_headers"]["Accept"].startswith("application/json;as=PartialObjectMetadataList")
        start = int(kw.get("_continue") or 0)
        items = self.pods.get(namespace, [])[start : start + kw["limit"]]
        more = start + kw["limit"] < len(self.pods.get(namespace, []))
        page = {"items": [{"metadata": m} for m in items],
                "metadata": {"continue": str(start + kw["limit"]) if more else ""}}  # fmt: skip
        return Response(json.dumps(page).encode())

    def patch_namespaced_pod(
        self, name: str, namespace: str, body: dict[str, Any], _content_type: str
    ) -> None:
        if self.before_patch is not None:
            self.before_patch(name)
        if name in self.gone:
            raise ApiException(status=404)
        with self.lock:
            self.patches.append((namespace, name, body, _content_type, time.monotonic()))
            for meta in self.pods.get(namespace, []):
                if meta["name"] == name:
                    meta.setdefault("annotations", {}).update(body["metadata"]["annotations"])


def pod(name: str, outputs: str | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if outputs:
        meta["annotations"] = {OUTPUTS_ANNOTATION: outputs}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return meta


async def test_only_injected_pods_not_yet_at_the_version_are_patched_by_merge_patch() -> None:
    core = FakeCore(pods={"shop": [pod("a"), pod("b", "v2"), pod("c", "v1"), pod("d", None, True)]})

    patched = await Propagator(core).propagate("shop", "v2")

    assert patched == 2
    assert sorted((ns, name) for ns, name, *_ in core.patches) == [("shop", "a"), ("shop", "c")]
    _, _, body, content_type, _ = core.patches[0]
    assert body == {"metadata": {"annotations": {OUTPUTS_ANNOTATION: "v2"}}}
    assert content_type == "application/merge-patch+json"


async def test_pods_are_listed_page_by_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(propagation, "PAGE", 3)
    core = FakeCore(pods={"shop": [pod(f"p{i}") for i in range(7)]})

    assert await Propagator(core, patches_per_second=1000).propagate("shop", "v1") == 7
    assert [call.get("_continue") for call in core.lists] == [None, "3", "6"]


async def test_patches_never_go_out_faster_than_the_rate() -> None:
    core = FakeCore(pods={"shop": [pod(f"p{i}") for i in range(11)]})

    await Propagator(core, patches_per_second=50, parallel=4).propagate("shop", "v1")

    times = sorted(t for *_, t in core.patches)
    assert times[-1] - times[0] >= 10 / 50 * 0.95  # 11 patches, evenly spaced by 1/50 s


async def test_a_pod_deleted_meanwhile_is_skipped() -> None:
    core = FakeCore(pods={"shop": [pod("a"), pod("b")]}, gone={"a"})

    assert await Propagator(core).propagate("shop", "v1") == 1


async def test_a_namespace_written_again_is_brought_to_its_newest_version_once() -> None:
    core = FakeCore(pods={"shop": [pod(f"p{i}") for i in range(6)]})
    propagator = Propagator(core, patches_per_second=1000, parallel=1)

    def written_again_on_first_patch(name: str) -> None:
        if not core.patches:
            propagator.written("shop", "v2")

    core.before_patch = written_again_on_first_patch
    runner = asyncio.create_task(propagator.run())
    propagator.written("shop", "v1")
    try:
        deadline = time.monotonic() + 10
        while len({n for ns, n, b, *_ in core.patches
                   if b["metadata"]["annotations"][OUTPUTS_ANNOTATION] == "v2"}) < 6:  # fmt: skip
            assert time.monotonic() < deadline, core.patches
            await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    versions = [b["metadata"]["annotations"][OUTPUTS_ANNOTATION] for _, _, b, *_ in core.patches]
    # p0 got v1 before v2 was known; the rest of the v1 round was dropped, not sent.
    assert versions == ["v1"] + ["v2"] * 6


async def test_the_rate_limiter_spaces_acquisitions_evenly() -> None:
    limiter = RateLimiter(100)
    start = time.monotonic()
    for _ in range(6):
        await limiter.acquire()
    assert time.monotonic() - start >= 5 / 100 * 0.95
