"""A real sidecar for the adapter tests, started on the test's own event loop.

Each adapter test file builds a one-route config (route ``chat``, plus ``embed`` when
asked) whose targets point at a simulated provider, and talks to the sidecar with the
official ``openai`` SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import openai

from aiguillage.sidecar.config import (
    CONFIG_FILE,
    CircuitBreaker,
    Provider,
    Retry,
    Route,
    SidecarConfig,
    Target,
    Timeouts,
)
from aiguillage.sidecar.main import Sidecar

FAST = Timeouts(connect=2.0, first_token=3.0, stream_idle=3.0, total=8.0)


def route(name: str, *targets: Target) -> Route:
    return Route(
        name=name,
        targets=targets,
        retry=Retry(attempts=1, backoff_base=0.01, backoff_max=0.05),
        timeouts=FAST,
        circuit_breaker=CircuitBreaker(consecutive_failures=100),
    )


@asynccontextmanager
async def running_sidecar(
    tmp_path: Path,
    providers: dict[str, Provider],
    routes: list[Route],
    credentials: dict[str, str],
) -> AsyncIterator[openai.AsyncOpenAI]:
    """An ``openai.AsyncOpenAI`` client talking to a started sidecar serving ``routes``."""
    config = SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )
    config_dir, credentials_dir = tmp_path / "config", tmp_path / "credentials"
    config_dir.mkdir()
    credentials_dir.mkdir()
    (config_dir / CONFIG_FILE).write_bytes(config.sealed().to_json())
    for name, text in credentials.items():
        (credentials_dir / name).write_text(text + "\n")
    sidecar = Sidecar(config_dir, credentials_dir, str(tmp_path / "audit.jsonl"), 0.05)
    url = await sidecar.start("127.0.0.1:0")
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10)
    try:
        assert sidecar.runtime.snapshot is not None, "the sidecar did not load its config"
        yield client
    finally:
        await client.close()
        await sidecar.stop()
