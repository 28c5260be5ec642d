"""Profile summaries, percentiles, scale manifests and the Python load generator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from aiguillage.devtools.bench import controlplane, pyloadgen
from aiguillage.devtools.bench.proxy import _function, summarize_raw_profile

from ._servers import chat_server

_STACK = "<module> (aiguillage/cli.py:5);run (asyncio/runners.py:118)"
RAW = "\n".join(
    [
        f"{_STACK};handle (aiguillage/sidecar/server.py:40) 30",
        f"{_STACK};handle (aiguillage/sidecar/server.py:41);"
        "dumps (/x/site-packages/orjson/__init__.py:1) 10",
        f"{_STACK} 60",
        "not a sample line",
    ]
)


def test_profile_summary_counts_own_and_total_time_per_function() -> None:
    summary = summarize_raw_profile(RAW)
    assert summary["samples"] == 100
    rows = {row["function"]: row for row in summary["top"]}
    assert rows["run (asyncio/runners.py)"] == {
        "function": "run (asyncio/runners.py)", "own_pct": 60.0, "total_pct": 100.0,
    }  # fmt: skip
    # two lines of the same function are one row
    assert rows["handle (aiguillage/sidecar/server.py)"]["own_pct"] == 30.0
    assert rows["handle (aiguillage/sidecar/server.py)"]["total_pct"] == 40.0
    assert summary["top"][0]["function"] == "run (asyncio/runners.py)"


def test_frame_paths_are_shortened() -> None:
    assert _function("f (/v/lib/python3.11/site-packages/aiohttp/web.py:3)") == "f (aiohttp/web.py)"
    assert _function("g (/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/events.py:80)") == (
        "g (asyncio/events.py)"
    )
    assert _function("h (/work/main/sidecar/aiguillage/sidecar/forward.py:9)") == (
        "h (aiguillage/sidecar/forward.py)"
    )
    assert _function("<lambda>") == "<lambda>"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert controlplane.pct(values, 0.5) == 50
    assert controlplane.pct(values, 0.95) == 95
    assert controlplane.pct([], 0.5) is None
    p = pyloadgen.percentiles([v / 1000 for v in values])
    assert (p["p50"], p["p90"], p["p99"], p["max"]) == (50.0, 90.0, 99.0, 100.0)


def test_scale_manifests_touch_a_tenth_of_the_namespaces_per_provider() -> None:
    docs = controlplane.scale_documents(100, 10, 20)
    kinds = [d["kind"] for d in docs]
    assert kinds.count("AIRoute") == 1000
    assert kinds.count("AIProvider") == kinds.count("Secret") == 20
    assert kinds.count("Namespace") == 100
    providers = {d["metadata"]["name"] for d in docs if d["kind"] == "AIProvider"}
    users: dict[str, set[str]] = {}
    for d in docs:
        if d["kind"] == "AIRoute":
            for target in d["spec"]["targets"]:
                assert target["provider"] in providers
                users.setdefault(target["provider"], set()).add(d["metadata"]["namespace"])
    affected = controlplane.namespaces_using_provider0(100, 20)
    assert users[controlplane.provider_name(0)] == affected
    assert len(affected) == 10


@pytest.fixture
async def sse_server() -> AsyncIterator[str]:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response({"ok": True})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"data: {json.dumps({'i': i})}\n\n".encode())
        if request.headers.get("X-Truncate") != "1":
            await resp.write(b"data: [DONE]\n\n")
        return resp

    async with chat_server(chat) as url:
        yield url


async def test_python_load_generator_measures_streams_and_counts_truncation(
    sse_server: str, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"model": "m", "stream": true}')
    args = ["-url", sse_server, "-body", f"@{body}", "-n", "20", "-c", "4", "-warmup", "2"]
    parsed = pyloadgen.parse_args([*args, "-stream"])
    result = await pyloadgen.main_async(parsed, body.read_bytes())
    assert result["completed"] == 20
    assert result["errors"] == 0
    assert result["ttft_ms"]["p50"] <= result["latency_ms"]["p50"]
    parsed = pyloadgen.parse_args([*args, "-stream", "-H", "X-Truncate: 1"])
    result = await pyloadgen.main_async(parsed, body.read_bytes())
    assert result["errors"] == 20
    assert result["error_samples"][0] == "stream ended without data: [DONE]"


def test_python_load_generator_refuses_other_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    assert pyloadgen.main(["-url", "http://10.0.0.1/x", "-body", "{}"]) == 2
    assert "non-loopback" in capsys.readouterr().err


NATIVE = "\n".join(
    [
        "run (asyncio/runners.py:118);epoll_pwait (/usr/lib/x86_64-linux-gnu/libc.so.6) 40",
        "run (asyncio/runners.py:118);_writelines (/x/site-packages/aiohttp/http_writer.py:9);"
        "write (/usr/lib/x86_64-linux-gnu/libc.so.6) 45",
        "run (asyncio/runners.py:118);gc_collect_main (/py/lib/libpython3.11.so.1.0) 15",
    ]
)


def test_native_profiles_leave_waiting_out_of_the_percentages() -> None:
    summary = summarize_raw_profile(NATIVE)
    assert summary["samples"] == 60  # at work
    assert summary["idle_samples"] == 40
    assert summary["idle_pct"] == 40.0
    rows = {row["function"]: row for row in summary["top"]}
    assert rows["write (libc.so.6)"]["own_pct"] == 75.0
    assert rows["gc_collect_main (libpython3.11.so.1.0)"]["own_pct"] == 25.0
    assert "epoll_pwait (libc.so.6)" not in rows
