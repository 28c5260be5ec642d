"""Deadline behaves as asyncio.timeout_at: a passed deadline is a TimeoutError, any other
cancellation stays a cancellation, the task is left as it was found."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiguillage.sidecar.deadline import Deadline


def this_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


async def test_a_passed_deadline_is_a_timeout_and_leaves_the_task_uncancelled() -> None:
    task = this_task()
    loop = task.get_loop()
    with pytest.raises(TimeoutError), Deadline(task, loop.time() + 0.05) as deadline:
        await asyncio.sleep(30)
    assert deadline.expired
    assert task.cancelling() == 0
    await asyncio.sleep(0)  # the task goes on normally


async def test_a_deadline_not_reached_changes_nothing() -> None:
    task = this_task()
    with Deadline(task, task.get_loop().time() + 30) as deadline:
        await asyncio.sleep(0.01)
    assert not deadline.expired
    await asyncio.sleep(0.05)  # its timer was cancelled: no late cancellation
    assert task.cancelling() == 0


async def test_a_deadline_already_past_expires_on_the_next_iteration() -> None:
    task = this_task()
    with pytest.raises(TimeoutError), Deadline(task, task.get_loop().time() - 1):
        await asyncio.sleep(30)


async def test_another_cancellation_is_never_turned_into_a_timeout() -> None:
    entered = asyncio.Event()

    async def request() -> None:
        task = this_task()
        with Deadline(task, task.get_loop().time() + 30):
            entered.set()
            await asyncio.sleep(30)

    running = asyncio.create_task(request())
    await entered.wait()
    running.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_cancellation_at_the_same_time_as_the_deadline_stays_a_cancellation() -> None:
    async def request() -> None:
        task = this_task()
        with Deadline(task, task.get_loop().time() - 1):
            task.cancel()  # asked for while the deadline is also cancelling the task
            await asyncio.sleep(30)

    running = asyncio.create_task(request())
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_nested_deadlines_the_inner_one_passing_is_the_inner_one_s_timeout() -> None:
    task = this_task()
    loop = task.get_loop()
    with Deadline(task, loop.time() + 30) as outer:
        with pytest.raises(TimeoutError), Deadline(task, loop.time() + 0.02):
            await asyncio.sleep(30)
        await asyncio.sleep(0.01)
    assert not outer.expired
    assert task.cancelling() == 0
