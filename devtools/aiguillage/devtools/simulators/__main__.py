"""Run one simulated provider until SIGTERM or SIGINT.

Usage::

    python -m aiguillage.devtools.simulators --kind openai --name mistral-eu --port 0 \\
        [--api-key K] [--chunks N] [--chunk-interval S] [--echo] [--base-path /v1] \\
        [--models a,b] \\
        [--deployment NAME=MODEL ...] [--api-version V ...]          # azure
        [--secret-key S] [--region R] [--bearer-token T]             # bedrock

Once listening it prints exactly one line, ``READY <url>``, on stdout (flushed), so that a
parent process can read the URL; the admin API is under ``<url>/_sim/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import SIMULATORS
from .base import Simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiguillage.devtools.simulators",
        description="Run a simulated AI provider (wire-faithful, with injectable faults).",
    )
    parser.add_argument("--kind", choices=sorted(SIMULATORS), default="openai")
    parser.add_argument("--name", default=None, help="shown in answers (default: the kind)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--api-key", default=None, help="required credential (access key id for bedrock)"
    )
    parser.add_argument("--chunks", type=int, default=4, help="content deltas per streamed answer")
    parser.add_argument("--chunk-interval", type=float, default=0.0, help="seconds between deltas")
    parser.add_argument("--reply", default=None, help="answer template ({name} is replaced)")
    parser.add_argument(
        "--echo",
        action="store_true",
        help="text answers repeat the request's last text, 1-3 characters per streamed delta",
    )
    parser.add_argument("--models", default=None, help="comma-separated list of accepted models")
    parser.add_argument("--embedding-dims", type=int, default=None)
    parser.add_argument("--base-path", default=None, help="openai: API prefix (default /v1)")
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="azure: a deployment",
    )
    parser.add_argument(
        "--api-version", action="append", default=[], help="azure: accepted api-version"
    )
    parser.add_argument("--secret-key", default=None, help="bedrock: verify SigV4 signatures")
    parser.add_argument("--region", default=None, help="bedrock: required signing region")
    parser.add_argument("--bearer-token", default=None, help="bedrock: accepted Bedrock API key")
    return parser


def make_simulator(args: argparse.Namespace) -> Simulator:
    """Build the simulator the parsed command line describes."""
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "api_key": args.api_key,
        "chunks": args.chunks,
        "chunk_interval": args.chunk_interval,
        "reply": args.reply,
        "echo": args.echo,
    }
    if args.models:
        options["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.embedding_dims is not None and args.kind in ("openai", "azure", "gemini"):
        options["embedding_dims"] = args.embedding_dims
    if args.kind == "openai" and args.base_path is not None:
        options["base_path"] = args.base_path
    if args.kind == "azure":
        if args.deployment:
            pairs = [d.partition("=") for d in args.deployment]
            options["deployments"] = {name: model or name for name, _, model in pairs}
        if args.api_version:
            options["api_versions"] = list(args.api_version)
    if args.kind == "bedrock":
        options.update(
            secret_key=args.secret_key, region=args.region, bearer_token=args.bearer_token
        )
    return SIMULATORS[args.kind](args.name or args.kind, **options)


async def serve(simulator: Simulator) -> None:
    """Start, print ``READY <url>``, and serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    url = await simulator.start()
    try:
        print(f"READY {url}", flush=True)
        await stop.wait()
    finally:
        await simulator.stop()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        simulator = make_simulator(args)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(simulator))
    return 0


if __name__ == "__main__":
    sys.exit(main())
