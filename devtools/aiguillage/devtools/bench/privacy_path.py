"""``python -m aiguillage.devtools.bench.privacy_path``: data protection in the request path.

Two measurements through a real sidecar (``aiguillage sidecar`` in its own process, on one
simulated OpenAI provider under US jurisdiction, a client sending from this process):

1. **Added latency** (c=1): one request at a time, in interleaved rounds, to a route without
   data-protection rules and to the same route with rules for every built-in category
   (pseudonymise e-mails and phones, redact the rest, toward non-EU targets), with a 1 KB
   prompt with no personal data (the pre-filter pass only), a 1 KB prompt with personal data
   (scan, placeholders, restoring the answer) and a 16 KB prompt with none; the median of
   each and what the rules add to it.
2. **Large prompts and the event loop**: while a client sends 128 KB prompts of digit-heavy
   look-alikes (order numbers, dates, prices: every detector runs, ~0.1–0.2 s of scanning each)
   back to back, another sends small requests one at a time; their latency, with the large
   scans run on the event loop and in a worker thread (``protection.THREAD_SCAN_BYTES``), and
   with no large prompts at all.

The machine's other work moves the numbers: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from aiguillage.devtools.bench.privacy import LOOK_ALIKES, PERSONAL, PROSE, RULES, text_of
from aiguillage.devtools.docs import publish
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import CONFIG_FILE, Provider, Route, SidecarConfig, Target
from aiguillage.sidecar.privacy.rules import DataProtectionRules

SECTION = "privacy-path-bench"
# The sidecar process, with the threshold above which scans go to a worker thread set first.
_SIDECAR = """
import sys
import aiguillage.sidecar.protection as protection
protection.THREAD_SCAN_BYTES = int(sys.argv[1])
from aiguillage.cli import main
main(["sidecar", "--config-dir", sys.argv[2], "--listen", sys.argv[3]])
"""
INLINE = 1 << 40  # a threshold no request reaches: every scan on the event loop


def _config(sim_url: str) -> SidecarConfig:
    rules = DataProtectionRules.model_validate(RULES)
    target = Target(provider="us", model="gpt-4o-mini")
    return SidecarConfig(
        namespace="bench",
        providers={
            "us": Provider(api="openai", endpoint=sim_url + "/v1", location="US", jurisdiction="US")
        },
        routes={
            "plain": Route(name="plain", targets=(target,)),
            "protected": Route(name="protected", targets=(target,), data_protection=rules),
        },
    ).sealed()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sidecar(config: SidecarConfig, threshold: int) -> Iterator[str]:
    """A sidecar process serving ``config``; yields its URL once ready."""
    root = Path(tempfile.mkdtemp(prefix="aiguillage-bench-privacy-"))
    (root / "config").mkdir()
    (root / "credentials").mkdir()
    (root / "config" / CONFIG_FILE).write_bytes(config.to_json())
    listen = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "AIGUILLAGE_AUDIT_LOG": str(root / "audit.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIDECAR, str(threshold), str(root / "config"), listen],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{listen}"
    try:
        asyncio.run(_ready(url))
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _ready(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sidecar at {url} was not ready within {within:g}s")
            await asyncio.sleep(0.05)


def _body(route: str, text: str) -> dict[str, Any]:
    return {"model": route, "messages": [{"role": "user", "content": text}], "max_tokens": 20}


async def _one(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter_ns()
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"the sidecar answered {resp.status}")
    return (time.perf_counter_ns() - start) / 1e6


PROMPTS = {
    "1 KB, no personal data": text_of(PROSE, 1024),
    "1 KB, personal data": text_of(PERSONAL, 1024),
    "16 KB, no personal data": text_of(PROSE, 16 * 1024),
}


async def added_latency(url: str, requests: int) -> dict[tuple[str, str], list[float]]:
    """Milliseconds per request, by (prompt, route), interleaved request by request."""
    samples: dict[tuple[str, str], list[float]] = {}
    async with aiohttp.ClientSession() as session:
        for text in PROMPTS.values():  # warm-up: connections, imports, caches
            for route in ("plain", "protected"):
                await _one(session, url, _body(route, text))
        for _ in range(requests):
            for prompt, text in PROMPTS.items():
                for route in ("plain", "protected"):
                    ms = await _one(session, url, _body(route, text))
                    samples.setdefault((prompt, route), []).append(ms)
    return samples


async def under_large_prompts(url: str, seconds: float, large: bool) -> tuple[list[float], int]:
    """Latencies of small requests sent one at a time for ``seconds`` while (if ``large``) a
    client sends 128 KB look-alike prompts back to back; and how many large ones were sent."""
    small = _body("protected", "What is the capital of France?")
    big = _body("protected", text_of(LOOK_ALIKES, 128 * 1024))
    stop = time.monotonic() + seconds
    sent = 0

    async def flood(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while time.monotonic() < stop:
            await _one(session, url, big)
            sent += 1

    async with aiohttp.ClientSession() as session:
        await _one(session, url, big)  # warm-up
        flooding = asyncio.create_task(flood(session)) if large else None
        await asyncio.sleep(0.2 if large else 0)
        latencies = []
        while time.monotonic() < stop:
            latencies.append(await _one(session, url, small))
        if flooding is not None:
            await flooding
    return latencies, sent


def _q(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(
    added: dict[tuple[str, str], list[float]],
    loops: dict[str, tuple[list[float], int]],
    requests: int,
    seconds: float,
    load: float,
) -> str:
    lines = [
        f"Generated by `python -m aiguillage.devtools.bench.privacy_path --requests {requests} "
        f"--seconds {seconds:g}` (load average {load:.1f} on {os.cpu_count()} cores during the "
        "run).",
        "",
        f"Added latency, one request at a time ({requests} each, interleaved; ms):",
        "",
        "| Prompt | p50 without rules | p50 with rules | Added at p50 |",
        "|---|---:|---:|---:|",
    ]
    for prompt in PROMPTS:
        plain = statistics.median(added[(prompt, "plain")])
        rules = statistics.median(added[(prompt, "protected")])
        lines.append(f"| {prompt} | {plain:.3f} | {rules:.3f} | {rules - plain:+.3f} |")
    lines += [
        "",
        f"Small requests while 128 KB look-alike prompts are sent back to back ({seconds:g} s "
        "each; ms):",
        "",
        "| Large prompts scanned | Small requests | p50 | p90 | p99 | max | 128 KB prompts sent |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (latencies, sent) in loops.items():
        lines.append(
            f"| {name} | {len(latencies)} | {statistics.median(latencies):.2f} "
            f"| {_q(latencies, 0.9):.2f} | {_q(latencies, 0.99):.2f} | {max(latencies):.2f} "
            f"| {sent} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from aiguillage.sidecar.protection import THREAD_SCAN_BYTES

    p = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench.privacy_path")
    p.add_argument("--requests", type=int, default=500, help="requests per prompt and route")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each loop test")
    p.add_argument("--write", type=Path, help=f"put the tables between the {SECTION} markers")
    args = p.parse_args(argv)
    servers = LoopThread()
    sim = OpenAISimulator("bench-us")
    servers.run(sim.start())
    try:
        config = _config(sim.url)
        loops: dict[str, tuple[list[float], int]] = {}
        with sidecar(config, THREAD_SCAN_BYTES) as url:
            added = asyncio.run(added_latency(url, args.requests))
            loops["none sent"] = asyncio.run(under_large_prompts(url, args.seconds, False))
            loops[f"in a worker thread (past {THREAD_SCAN_BYTES // 1024} KB)"] = asyncio.run(
                under_large_prompts(url, args.seconds, True)
            )
        with sidecar(config, INLINE) as url:
            loops["on the event loop"] = asyncio.run(under_large_prompts(url, args.seconds, True))
    finally:
        servers.run(sim.stop())
        servers.close()
    table = report(added, loops, args.requests, args.seconds, os.getloadavg()[0])
    publish(table, args.write, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
