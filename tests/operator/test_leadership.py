"""Leader election (``operator/leadership.py``) against an in-memory Lease API with the API
server's optimistic concurrency (resourceVersion conflicts)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from aiguillage.operator.leadership import LeaderElector

FAST = {"lease_seconds": 0.6, "renew_deadline": 0.4, "retry_seconds": 0.05}
# Where a test shows that something happens *before* a lease expires, the lease is long
# enough that no scheduling delay on a busy machine can pass for an expiry.
LONG_LEASE = {**FAST, "lease_seconds": 30.0}


class FakeLeases:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False  # the API server is unreachable
        self.writes: list[tuple[str | None, float]] = []  # (holder written, monotonic time)

    def _check(self) -> None:
        if self.down:
            raise ApiException(status=503)

    def _view(self) -> SimpleNamespace:
        assert self.lease is not None
        spec = self.lease["spec"]
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version)),
            spec=SimpleNamespace(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                lease_transitions=spec.get("leaseTransitions"),
                acquire_time=datetime.fromisoformat(spec["acquireTime"])
                if spec.get("acquireTime")
                else None,
            ),
        )

    def read_namespaced_lease(self, name: str, namespace: str) -> SimpleNamespace:
        self._check()
        if self.lease is None:
            raise ApiException(status=404)
        return self._view()

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> SimpleNamespace:
        self._check()
        if self.lease is not None:
            raise ApiException(status=409)
        self._write(body)
        return self._view()

    def _write(self, body: dict[str, Any]) -> None:
        self.lease, self.version = copy.deepcopy(body), self.version + 1
        self.writes.append((body["spec"].get("holderIdentity"), time.monotonic()))

    def last_write_by(self, holder: str) -> float:
        return max(when for who, when in self.writes if who == holder)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> SimpleNamespace:
        self._check()
        if body["metadata"].get("resourceVersion") != str(self.version):
            raise ApiException(status=409)
        self._write(body)
        return self._view()

    @property
    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"].get("holderIdentity")


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


class Replica:
    """An elector whose ``lead()`` records when it runs."""

    def __init__(self, api: FakeLeases, identity: str, timing: dict[str, float] = FAST) -> None:
        self.elector = LeaderElector(api, "ops", identity=identity, **timing)  # type: ignore[arg-type]
        self.leading = False
        self.task: asyncio.Task[None] | None = None

    async def lead(self) -> None:
        self.leading = True
        try:
            await asyncio.Event().wait()
        finally:
            self.leading = False

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.elector.run(self.lead))
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def crash(self) -> None:
        """Stop without releasing: as a killed process would."""
        assert self.task is not None
        self.elector._release = _noop  # type: ignore[method-assign]
        self.task.cancel()


async def _noop() -> None:
    return None


async def test_one_replica_leads_the_other_waits() -> None:
    api = FakeLeases()
    a = Replica(api, "a", LONG_LEASE).start()
    await until(lambda: a.leading)
    b = Replica(api, "b", LONG_LEASE).start()
    # b reads the Lease again and again and leaves it to a, which keeps renewing.
    renewals = len(api.writes)
    await until(lambda: len(api.writes) >= renewals + 10, within=30)

    assert (a.leading, b.leading, api.holder) == (True, False, "a")
    await a.stop()
    await b.stop()


async def test_a_crashed_leaders_lease_expires_and_is_taken_over() -> None:
    api = FakeLeases()
    a = Replica(api, "a").start()
    await until(lambda: a.leading)
    b = Replica(api, "b").start()
    await asyncio.sleep(0.1)
    a.crash()

    await until(lambda: b.leading)

    # Not before a's last renewal had gone unrenewed for a whole lease (b's own clock).
    taken_over = api.last_write_by("b")
    assert taken_over - api.last_write_by("a") >= FAST["lease_seconds"]
    assert api.holder == "b"
    assert api.lease is not None
    assert api.lease["spec"]["leaseTransitions"] == 1
    await b.stop()


async def test_a_stopping_leader_releases_so_the_standby_need_not_wait() -> None:
    api = FakeLeases()
    a = Replica(api, "a", LONG_LEASE).start()
    await until(lambda: a.leading)
    b = Replica(api, "b", LONG_LEASE).start()
    await asyncio.sleep(0.1)

    await a.stop()
    # Well before the 30 s lease could have expired: the release is what let b in.
    await until(lambda: b.leading, within=10)
    holders = [who for who, _ in api.writes]
    assert holders[-2:] == [None, "b"]  # a's last write handed the Lease back
    assert set(holders[:-2]) == {"a"}
    await b.stop()


async def test_a_leader_that_cannot_renew_stops_leading_before_the_lease_expires() -> None:
    api = FakeLeases()
    a = Replica(api, "a", LONG_LEASE).start()
    await until(lambda: a.leading)

    api.down = True
    # After the 0.4 s renew deadline, long before the 30 s lease would let another replica in.
    await until(lambda: not a.leading, within=10)
    api.down = False
    await until(lambda: a.leading)  # and leads again once it can
    await a.stop()
