"""The shared store as requests see it: up, or down without ever making them wait.

A store call that fails (refused, reset, or no answer within the store's short timeout)
marks the store down. While it is down, admissions fail at once with
:class:`~.errors.StoreUnavailable`, without touching the network, and each limit's
``when_store_unavailable`` decides (see :mod:`~.quota`); one background task pings the
store with exponential backoff (:data:`FIRST_RETRY` doubling to :data:`LAST_RETRY`
seconds) and marks it up again when it answers.

Settlements are not lost to a short outage: those that cannot be sent wait in a queue
(at most :data:`MAX_PENDING`; past that the oldest are dropped and counted) and are sent, in
order, when the store is back, before it is marked up. What can be lost, as the README
states: the settlements still queued when the sidecar stops (their reservations end with
their lease, so nothing stays reserved, but their cost is never added to the shared
spend), those dropped from a full queue, and a settlement the store applied but whose
answer was lost (sent again: its cost then counts twice, on the safe side).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from aiguillage.sidecar import log
from aiguillage.sidecar.limits.errors import StoreUnavailable
from aiguillage.sidecar.limits.redis_store import RedisStore
from aiguillage.sidecar.limits.store import Admission, Levels, Settlement

FIRST_RETRY = 0.25
LAST_RETRY = 5.0
MAX_PENDING = 10_000

# (operation) -> None: counts one store error (aiguillage_shared_store_errors_total).
ErrorCounter = Callable[[str], None]


class SharedStore:
    """A :class:`RedisStore` with outage handling; ``on_error`` counts failures."""

    def __init__(self, store: RedisStore, on_error: ErrorCounter) -> None:
        self.store = store
        self._on_error = on_error
        self._down_since: float | None = None
        self._next_try = 0.0
        self._reconnect: asyncio.Task[None] | None = None
        self._pending: deque[Settlement] = deque()
        self._sending: set[asyncio.Task[None]] = set()
        self.lost = 0  # settlements dropped from a full queue
        self._flushed = 0  # settlements sent when the store came back

    @property
    def up(self) -> bool:
        return self._down_since is None

    def retry_in(self) -> float:
        """Seconds until the store is tried again (0 when it is up)."""
        if self.up:
            return 0.0
        return max(0.0, self._next_try - time.monotonic())

    async def admit(self, admission: Admission) -> Levels:
        if not self.up:
            raise StoreUnavailable("the shared store is down")
        try:
            return await self.store.admit(admission)
        except StoreUnavailable as exc:
            self._failed("admit", exc)
            raise

    def settle(self, settlement: Settlement, done: Callable[[tuple[int, ...]], None]) -> None:
        """Send ``settlement`` in the background (queued while the store is down); ``done``
        receives the budget counters' spend once it is applied."""
        if not self.up:
            self._queue(settlement)
            return
        task = asyncio.get_running_loop().create_task(self._send(settlement, done))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, settlement: Settlement, done: Callable[[tuple[int, ...]], None]) -> None:
        try:
            spent = await self.store.settle(settlement)
        except StoreUnavailable as exc:
            self._failed("settle", exc)
            self._queue(settlement)
            return
        done(spent)

    def _queue(self, settlement: Settlement) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.lost += 1
            self._on_error("settlement_lost")
        self._pending.append(settlement)

    def _failed(self, operation: str, exc: StoreUnavailable) -> None:
        self._on_error(operation)
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._next_try = self._down_since + FIRST_RETRY
        log.server.warning(
            "shared store %s cannot be reached (%s failed: %s): limits follow "
            "whenStoreUnavailable until it answers again",
            self.store.url,
            operation,
            exc,  # the type of what failed, never a message that could quote the password
        )
        self._reconnect = asyncio.get_running_loop().create_task(self._come_back())

    async def _come_back(self) -> None:
        delay = FIRST_RETRY
        while True:
            await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))
            try:
                await self.store.ping()
                await self._flush()
            except StoreUnavailable:
                self._on_error("reconnect")
                delay = min(LAST_RETRY, delay * 2)
                self._next_try = time.monotonic() + delay
                continue
            assert self._down_since is not None
            log.server.info(
                "shared store %s answers again after %.1f s; %d settlement(s) sent",
                self.store.url,
                time.monotonic() - self._down_since,
                self._flushed,
            )
            self._down_since = None
            self._reconnect = None
            return

    async def _flush(self) -> None:
        """Send the queued settlements in order; a failure leaves the rest queued."""
        self._flushed = 0
        while self._pending:
            await self.store.settle(self._pending[0])
            self._pending.popleft()
            self._flushed += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def idle(self) -> None:
        """Wait until the settlements sent so far have been answered (or queued)."""
        while self._sending:
            await asyncio.wait(set(self._sending))

    async def close(self, wait: float = 1.0) -> None:
        """Stop reconnecting; give settlements in flight up to ``wait`` seconds; close."""
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=wait)
        if self._pending:
            log.server.warning(
                "stopping with %d settlement(s) the shared store %s never received: their "
                "reservations end with their lease, their cost is not in the shared spend",
                len(self._pending),
                self.store.url,
            )
        await self.store.close()
