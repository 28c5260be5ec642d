"""The listener (``httpserver/server.py``): bound port, drain, close."""

from __future__ import annotations

import asyncio

from aiguillage.sidecar.httpserver import Request, Response, StreamResponse
from tests.sidecar.conftest import async_wait_for
from tests.sidecar.httpserver._raw import WITHIN, closed_by_server, get, read_answer
from tests.sidecar.httpserver.conftest import Running, Start


async def test_port_0_reports_the_bound_port(start: Start) -> None:
    running = await start()
    assert running.port > 0
    reader, writer = await running.connect()
    writer.write(get("/echo"))
    assert (await read_answer(reader)).status == 200
    writer.close()


async def test_shutdown_closes_idle_connections_at_once_and_lets_answers_finish(
    start: Start,
) -> None:
    running: Running
    release = asyncio.Event()

    async def busy(request: Request) -> StreamResponse:
        running.events.append("busy")
        await release.wait()
        return Response(200, b"finished")

    running = await start({"/busy": busy})
    idle_reader, idle_writer = await running.connect()
    idle_writer.write(get("/echo"))
    await read_answer(idle_reader)  # now idle, kept alive
    busy_reader, busy_writer = await running.connect()
    busy_writer.write(get("/busy"))
    await async_wait_for(
        lambda: running.events == ["busy"], WITHIN, "the busy request to be served"
    )

    running.server.shutdown()
    assert await closed_by_server(idle_reader)
    try:  # new connections are refused
        await asyncio.open_connection("127.0.0.1", running.port)
        raise AssertionError("a connection was accepted after shutdown()")
    except OSError:
        pass
    release.set()
    answer = await read_answer(busy_reader)
    assert (answer.body, answer.headers["connection"]) == (b"finished", "close")
    assert await closed_by_server(busy_reader)
    idle_writer.close()
    busy_writer.close()


async def test_close_cancels_what_still_runs(start: Start) -> None:
    running: Running

    serving = asyncio.Event()

    async def forever(request: Request) -> StreamResponse:
        try:
            serving.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            running.cancelled.set()
            raise
        return Response(200)

    running = await start({"/forever": forever})
    reader, writer = await running.connect()
    writer.write(get("/forever"))
    await asyncio.wait_for(serving.wait(), WITHIN)
    await running.server.close()
    assert running.cancelled.is_set()
    assert await closed_by_server(reader)
    writer.close()
