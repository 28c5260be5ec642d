"""A deadline for a block of a request's own task: ``asyncio.timeout_at`` without lookups.

``asyncio.timeout`` looks up the running loop twice and the current task once; on CPython
3.11 each lookup is a ``getpid()`` system call (the C ``get_running_loop`` checks that the
loop's process is still this one, a fork guard dropped in 3.12). A request ran three such
blocks (reading the body, the route's total deadline, the provider's first answer): 9 of
the ~12 ``getpid`` calls of a request, and with the Timeout's own bookkeeping ~3 µs a block
against ~0.7 µs for the timer it needs (see docs/bench/optimisations.md). The handler knows
its task once; :class:`Deadline` is given it.

Same rules as :class:`asyncio.Timeout` (CPython 3.11): when ``when`` passes, the task is
cancelled; leaving the block, that cancellation becomes :class:`TimeoutError` unless another
cancellation was requested meanwhile (the client went away, the drain ended the request),
which then goes on as :class:`asyncio.CancelledError`. A ``when`` already past cancels on the
loop's next iteration.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any


class Deadline:
    """``with Deadline(task, when):`` is ``async with asyncio.timeout_at(when):`` run by
    ``task`` (which must be the task running the block)."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task", "_when")

    def __init__(self, task: asyncio.Task[Any], when: float) -> None:
        self._task = task
        self._when = when
        self._handle: asyncio.Handle | None = None
        self._expired = False
        self._cancelling = 0

    def __enter__(self) -> Deadline:
        task = self._task
        loop = task.get_loop()
        self._cancelling = task.cancelling()
        if self._when <= loop.time():
            self._handle = loop.call_soon(self._on_time)
        else:
            self._handle = loop.call_at(self._when, self._on_time)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc  # no other cancellation asked for: the deadline's

    def _on_time(self) -> None:
        self._handle = None
        self._expired = True
        self._task.cancel()

    @property
    def expired(self) -> bool:
        return self._expired
