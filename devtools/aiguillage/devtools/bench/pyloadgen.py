"""Async Python load generator: the fallback when the Go one (``hack/loadgen``) cannot be built.

Same flags and same JSON output as the Go program::

    python -m aiguillage.devtools.bench.pyloadgen -url URL -body @FILE -n 1000 -c 16 \\
        [-warmup 100] [-stream] [-max-seconds S] [-timeout 60s] [-H 'Name: value' ...]

It is slower than the Go one (its own CPU use shows up as latency on a 2-core machine), which
the report says when it is used.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99, max and mean of seconds, in milliseconds."""
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        rank = max(0, math.ceil(q * len(ordered)) - 1)
        return round(ordered[rank] * 1000, 3)

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1] * 1000, 3),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
    }


class Sample:
    __slots__ = ("error", "latency", "nbytes", "start", "status", "ttft")

    def __init__(self) -> None:
        self.start = 0.0
        self.latency = 0.0
        self.ttft = 0.0
        self.status = 0
        self.nbytes = 0
        self.error: str | None = None


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool
) -> Sample:
    s = Sample()
    s.start = start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            s.status = resp.status
            done = False
            if stream:
                async for line in resp.content:
                    s.nbytes += len(line)
                    if not s.ttft and line.startswith(b"data:"):
                        s.ttft = time.perf_counter() - start
                    if line.startswith(b"data: [DONE]"):
                        done = True
            else:
                s.nbytes = len(await resp.read())
            s.latency = time.perf_counter() - start
            if resp.status != 200:
                s.error = f"status {resp.status}"
            elif stream and not done:
                s.error = "stream ended without data: [DONE]"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"
        s.latency = time.perf_counter() - start
    return s


async def run(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    n: int,
    c: int,
    deadline: float | None,
) -> tuple[list[Sample], float, bool]:
    counter = iter(range(n))
    samples: list[Sample] = []
    timed_out = False

    async def worker() -> None:
        nonlocal timed_out
        for _ in counter:
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                return
            samples.append(await one(session, url, body, headers, stream))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return samples, time.perf_counter() - start, timed_out


def max_in_flight(samples: Sequence[Sample]) -> int:
    """The most requests open at one moment (as the Go load generator computes it)."""
    events = sorted(
        [(s.start, 1) for s in samples] + [(s.start + s.latency, -1) for s in samples]
    )  # at equal times -1 sorts first: touching intervals do not overlap
    current = most = 0
    for _, delta in events:
        current += delta
        most = max(most, current)
    return most


def _duration(text: str) -> float:
    text = text.strip()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


async def main_async(args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if args.stream:
        headers["Accept"] = "text/event-stream"
    for h in args.H:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    connector = aiohttp.TCPConnector(limit=args.c, force_close=False)
    timeout = aiohttp.ClientTimeout(total=_duration(args.timeout))
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        if args.warmup:
            await run(session, args.url, body, headers, args.stream, args.warmup, args.c, None)
        deadline = time.perf_counter() + args.max_seconds if args.max_seconds > 0 else None
        samples, elapsed, timed_out = await run(
            session, args.url, body, headers, args.stream, args.n, args.c, deadline
        )
    ok = [s for s in samples if s.error is None]
    statuses: dict[str, int] = {}
    for s in samples:
        if s.status:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    result: dict[str, Any] = {
        "url": args.url,
        "concurrency": args.c,
        "stream": args.stream,
        "requested": args.n,
        "warmup": args.warmup,
        "completed": len(samples),
        "errors": len(samples) - len(ok),
        "error_samples": [s.error for s in samples if s.error][:5],
        "statuses": statuses,
        "duration_s": elapsed,
        "rps": round(len(ok) / elapsed, 1) if elapsed > 0 else 0.0,
        "stopped_by_time_limit": timed_out,
        "latency_ms": percentiles([s.latency for s in ok]),
        "max_in_flight": max_in_flight(samples),
        "response_bytes": sum(s.nbytes for s in samples),
        "client": "python-loadgen",
    }
    if args.stream:
        result["ttft_ms"] = percentiles([s.ttft for s in ok])
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pyloadgen", description=__doc__)
    parser.add_argument("-url", required=True)
    parser.add_argument("-body", required=True)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("-c", type=int, default=1)
    parser.add_argument("-warmup", type=int, default=100)
    parser.add_argument("-stream", action="store_true")
    parser.add_argument("-max-seconds", dest="max_seconds", type=float, default=0.0)
    parser.add_argument("-timeout", default="60s")
    parser.add_argument("-H", action="append", default=[])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    host = urlsplit(args.url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"pyloadgen: refusing non-loopback target {host!r}", file=sys.stderr)
        return 2
    body = Path(args.body[1:]).read_bytes() if args.body.startswith("@") else args.body.encode()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args, body))
    else:
        result = uvloop.run(main_async(args, body))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
