"""One sidecar in front of one simulated provider of each wire format, for the compat suite.

Route names are the provider formats (``openai``, ``azure-openai``, ``anthropic``, ``gemini``,
``vertex-ai``, ``bedrock``): a framework pointed at the sidecar picks the format by the
``model`` it asks for. Servers run on a background event loop (:class:`LoopThread`), so
synchronous framework clients can call them from the test thread.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.config import (
    CONFIG_FILE,
    CircuitBreaker,
    Retry,
    Route,
    SidecarConfig,
    Target,
    Timeouts,
)
from aiguillage.sidecar.main import Sidecar
from tests.sidecar._formats import ROWS

FORMATS = sorted(ROWS)


@dataclass
class Stack:
    lt: LoopThread
    url: str  # the sidecar, e.g. http://127.0.0.1:4321 (OpenAI clients add /v1)
    simulators: dict[str, Simulator]

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def reply(self, fmt: str) -> str:
        """The text the simulator behind route ``fmt`` answers."""
        return self.simulators[fmt].reply


@contextmanager
def running_stack() -> Iterator[Stack]:
    lt = LoopThread()
    sims = {fmt: ROWS[fmt].simulator() for fmt in FORMATS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            for sim in sims.values():
                lt.run(sim.start())
            providers = {fmt: ROWS[fmt].provider(sims[fmt].url) for fmt in FORMATS}
            # Each provider names its credential file "p": one directory per provider
            # would be needed, so the credential names are rewritten per format.
            providers = {
                fmt: p.model_copy(update={"credential": fmt}) for fmt, p in providers.items()
            }
            routes = {
                fmt: Route(
                    name=fmt,
                    targets=(Target(provider=fmt, model=ROWS[fmt].model),),
                    retry=Retry(attempts=1),
                    timeouts=Timeouts(connect=5, first_token=20, stream_idle=20, total=60),
                    circuit_breaker=CircuitBreaker(consecutive_failures=1000),
                )
                for fmt in FORMATS
            }
            config = SidecarConfig(namespace="compat", providers=providers, routes=routes)
            (root / "config").mkdir()
            (root / "credentials").mkdir()
            (root / "config" / CONFIG_FILE).write_bytes(config.sealed().to_json())
            for fmt in FORMATS:
                (root / "credentials" / fmt).write_text(ROWS[fmt].credential + "\n")
            sidecar = Sidecar(root / "config", root / "credentials", str(root / "audit.jsonl"))
            url = lt.run(sidecar.start("127.0.0.1:0"))
            try:
                yield Stack(lt, url, sims)
            finally:
                lt.run(sidecar.stop())
        finally:
            for sim in sims.values():
                if sim.started:
                    lt.run(sim.stop())
            lt.close()
