"""Services some sidecar features talk to, run on loopback for the feature-cost measurement.

* an OTLP/HTTP trace collector that only counts what it receives (exports, spans, bytes):
  ``python -m aiguillage.devtools.bench.services otlp-sink`` prints ``READY <url>`` once
  listening; ``POST <url>/v1/traces`` is answered 200 with an empty export response, and
  ``GET <url>/stats`` returns the counts as JSON;
* a ``redis-server`` (Debian package) with persistence off, and `redis_command`, a client of
  a few lines for the odd ``PING`` / ``DBSIZE`` (no Redis library in the project's venv).

`read_ready_line` is how the benchmark learns the URL of any child that announces itself
with ``READY <url>`` (the simulated upstream does too).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench.procs import Proc, Procs


class ServiceError(RuntimeError):
    """A service did not start or answer; the message says what it printed."""


def read_ready_line(proc: Proc, what: str, timeout: float = 30) -> str:
    """The URL a child prints as its first stdout line, ``READY <url>``."""
    assert proc.popen.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not proc.alive:
            raise ServiceError(f"{what} did not start:\n{proc.tail()}")
        ready, _, _ = select.select([proc.popen.stdout], [], [], remaining)
        if ready:
            chunk = os.read(proc.popen.stdout.fileno(), 4096)
            if not chunk:
                raise ServiceError(f"{what} exited:\n{proc.tail()}")
            line += chunk
    text = line.decode().strip()
    if not text.startswith("READY "):
        raise ServiceError(f"unexpected first line from {what}: {text!r}")
    return text.split(" ", 1)[1]


# -- OTLP sink -----------------------------------------------------------------------------------


def start_otlp_sink(procs: Procs, *, cpus: str | None) -> tuple[Proc, str]:
    """The counting trace collector in its own process; returns it and its base URL."""
    argv = [sys.executable, "-m", "aiguillage.devtools.bench.services", "otlp-sink"]
    proc = procs.spawn("otlp-sink", argv, cpus=cpus, stdout_pipe=True)
    return proc, read_ready_line(proc, "the OTLP sink")


def sink_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as resp:
        stats: dict[str, Any] = json.loads(resp.read())
    return stats


def count_spans(body: bytes) -> int | None:
    """Spans in an OTLP ExportTraceServiceRequest (protobuf), or None if it cannot be read."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        return None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception:  # a malformed export is counted as one with no span we can read
        return None
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


def _serve_otlp_sink() -> None:
    import asyncio

    from aiohttp import web

    stats = {"exports": 0, "spans": 0, "bytes": 0, "unreadable": 0}

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        stats["exports"] += 1
        stats["bytes"] += len(body)
        spans = count_spans(body)
        if spans is None:
            stats["unreadable"] += 1
        else:
            stats["spans"] += spans
        # An empty ExportTraceServiceResponse is zero bytes of protobuf.
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        app.router.add_get("/stats", get_stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"READY http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- Redis ---------------------------------------------------------------------------------------


def redis_server() -> str | None:
    return shutil.which("redis-server")


def redis_command(port: int, *args: str, timeout: float = 5) -> str:
    """Send one command (RESP) to a Redis on loopback; the reply's first line, without its type
    byte (``PONG``, an integer as text, or the error message)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if line.startswith("-"):
        raise ServiceError(f"redis {args[0]}: {line[1:]}")
    return line[1:]


def start_redis(
    procs: Procs, workdir: Path, *, cpus: str | None, timeout: float = 30
) -> tuple[Proc, int]:
    """A throw-away ``redis-server`` on a free loopback port (no persistence)."""
    path = redis_server()
    if path is None:
        raise ServiceError("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    root = workdir / "redis"
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        path, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(root), "--daemonize", "no", "--loglevel", "warning",
    ]  # fmt: skip
    proc = procs.spawn("redis", argv, cpus=cpus)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if redis_command(port, "PING", timeout=1) == "PONG":
                return proc, port
        except OSError:
            pass
        if not proc.alive or time.monotonic() > deadline:
            raise ServiceError(f"redis-server did not answer PING:\n{proc.tail()}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiguillage.devtools.bench.services")
    parser.add_argument("service", choices=["otlp-sink"])
    parser.parse_args(argv)
    _serve_otlp_sink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
