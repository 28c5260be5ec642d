"""Both load generators say how many requests were open at the same moment: all of them when
the server holds every answer until the last request has arrived."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiguillage.devtools.bench import pyloadgen, tools

from ._servers import chat_server

HELD = 8


@pytest.fixture
async def held_server() -> AsyncIterator[str]:
    """Answers nothing until HELD requests are open, then answers them all (streams too)."""
    arrived = 0
    everyone = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        nonlocal arrived
        body = await request.json()
        arrived += 1
        if arrived >= HELD:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 60)
        if not body.get("stream"):
            return web.json_response({"ok": True})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"i": 0}\n\ndata: [DONE]\n\n')
        return resp

    async with chat_server(chat) as url:
        yield url


def _args(url: str, body: Path, *extra: str) -> list[str]:
    return ["-url", url, "-body", f"@{body}", "-n", str(HELD), "-c", str(HELD), "-warmup", "0",
            *extra]  # fmt: skip


async def test_the_go_load_generator_counts_requests_open_together(
    held_server: str, tmp_path: Path
) -> None:
    gen = tools.build_loadgen()
    if gen.kind != "go":
        pytest.skip("no Go toolchain: the Python load generator is tested below")
    body = tmp_path / "body.json"
    body.write_text('{"model": "m", "stream": true}')
    proc = await asyncio.create_subprocess_exec(
        *gen.argv, *_args(held_server, body, "-stream"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    assert (result["completed"], result["errors"]) == (HELD, 0)
    assert result["max_in_flight"] == HELD


async def test_the_python_load_generator_counts_requests_open_together(
    held_server: str, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"model": "m"}')
    result = await pyloadgen.main_async(pyloadgen.parse_args(_args(held_server, body)), b"{}")
    assert (result["completed"], result["errors"]) == (HELD, 0)
    assert result["max_in_flight"] == HELD


def test_one_at_a_time_is_never_more_than_one_open() -> None:
    samples = []
    for start in (0.0, 1.0, 2.0):  # each ends exactly when the next begins
        s = pyloadgen.Sample()
        s.start, s.latency = start, 1.0
        samples.append(s)
    assert pyloadgen.max_in_flight(samples) == 1
    samples[1].latency = 1.5  # overlaps the third
    assert pyloadgen.max_in_flight(samples) == 2
