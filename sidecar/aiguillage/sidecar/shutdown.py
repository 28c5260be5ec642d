"""Draining on SIGTERM: stop accepting, let requests finish for a bounded time, end the rest.

Kubernetes sends SIGTERM and, after the pod's grace period (30 s by default), SIGKILL. A
stream can last minutes, so the sidecar cannot wait for every request: it drains for
``--drain-seconds`` (``AIGUILLAGE_DRAIN_SECONDS``, default :data:`DRAIN_SECONDS`, well under
the default grace period), then ends what is still running itself, so every client gets a
truthful end and every request its audit line before the process exits 0:

1. the listening socket is closed (new connections are refused) and idle keep-alive
   connections are closed; a busy connection closes after its current answer;
2. the requests in flight (:class:`InFlight`) get until the drain deadline to finish;
3. then each one still running is cancelled with :attr:`InFlight.expired` set: its handler
   ends a started stream with an error event in the client's API shape, answers a request
   not yet answered with a 503 ``shutdown``, and writes its audit record
   (outcome ``shutdown``).

:class:`InFlight` is also how the server tells a cancellation at the drain deadline from a
client that went away.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiguillage.sidecar import log

DRAIN_SECONDS = 20.0
# How long ended requests get to write their last bytes and audit records.
FINISH_SECONDS = 5.0


class InFlight:
    """The handler tasks of the requests being served."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()
        # Set once the drain deadline passed: cancellations from then on are the sidecar's.
        self.expired = False
        self._empty: asyncio.Event | None = None

    def enter(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task[object] | None:
        """Count the running task in; ``loop``, when the caller knows it, spares asyncio
        looking it up (a ``getpid()`` system call on Python 3.11, 2.5 % of a request)."""
        task = asyncio.current_task(loop)
        if task is not None:
            self.tasks.add(task)
        return task

    def leave(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
            self.tasks.discard(task)
        if not self.tasks and self._empty is not None:
            self._empty.set()

    async def drain(self, seconds: float) -> int:
        """Wait up to ``seconds`` for the requests in flight; end the rest. Returns how many
        had to be ended."""
        if self.tasks:
            log.server.info("draining %d request(s) for up to %gs", len(self.tasks), seconds)
            self._empty = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._empty.wait()
        left = list(self.tasks)
        if not left:
            return 0
        log.server.warning("drain deadline passed: ending %d request(s)", len(left))
        self.expired = True
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=FINISH_SECONDS)
        return len(left)
