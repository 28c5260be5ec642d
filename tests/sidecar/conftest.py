"""Fixtures for the sidecar tests: simulated providers, a running sidecar, config builders.

Servers (simulators and sidecars) run on one background event loop (:class:`LoopThread`), so the
synchronous ``openai`` client can call them from the test thread, and async tests can call them
from pytest's own loop. Configs are built from the sidecar's pydantic models directly: these tests
never go through the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from multidict import CIMultiDict

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.audit import AuditLog
from aiguillage.sidecar.config import (
    CONFIG_FILE,
    CircuitBreaker,
    Provider,
    Residency,
    Retry,
    Route,
    SidecarConfig,
    Target,
    Timeouts,
)
from aiguillage.sidecar.main import Sidecar
from aiguillage.sidecar.privacy.rules import DataProtectionRules
from tests.sidecar._formats import ROWS

EU_KEY = "sk-eu-simulated-key-0001"
US_KEY = "sk-us-simulated-key-0002"
EU_MODEL = "mistral-small-latest"
US_MODEL = "gpt-4o-mini"
CLIENT_KEY = "sk-client-key-must-not-travel"

# Tight enough that fault tests are quick, loose enough for a loaded CI machine.
FAST = Timeouts(connect=2.0, first_token=2.0, stream_idle=2.0, total=10.0)
# Long enough that no deadline of the sidecar ends a request a test means to end otherwise
# (the client leaving, a drain).
PATIENT = Timeouts(connect=2.0, first_token=60.0, stream_idle=60.0, total=120.0)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


async def async_wait_for(
    predicate: Callable[[], Any], within: float = 5.0, what: str = "condition"
) -> Any:
    """:func:`wait_for` for async tests: yields to the event loop between polls."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.005)


async def all_written(log: AuditLog, within: float = 5.0) -> None:
    """Wait until ``log`` has written its batch (at most BATCH_SECONDS after its first record)."""
    await async_wait_for(lambda: not log.waiting, within, "the audit batch written")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- config builders ---------------------------------------------------------------------------


def provider_for(
    sim: OpenAISimulator | None,
    *,
    location: str | None,
    jurisdiction: str | None,
    credential: str | None = None,
    endpoint: str | None = None,
) -> Provider:
    return Provider(
        api="openai",
        endpoint=endpoint or (sim.url + "/v1" if sim else ""),
        location=location,
        jurisdiction=jurisdiction,
        credential=credential,
    )


def route(
    name: str,
    *targets: Target,
    strategy: str = "priority",
    residency: Residency | None = None,
    retry: Retry | None = None,
    timeouts: Timeouts = FAST,
    circuit_breaker: CircuitBreaker | None = None,
) -> Route:
    return Route.model_validate(
        {
            "name": name,
            "strategy": strategy,
            "residency": residency or Residency(),
            "targets": targets,
            "retry": retry or Retry(attempts=1, backoff_base=0.01, backoff_max=0.05),
            "timeouts": timeouts,
            "circuit_breaker": circuit_breaker or CircuitBreaker(consecutive_failures=100),
        }
    )


def eu_target(priority: int = 0, **kw: Any) -> Target:
    return Target(provider="mistral-eu", model=EU_MODEL, priority=priority, **kw)


def us_target(priority: int = 1, **kw: Any) -> Target:
    return Target(provider="openai-us", model=US_MODEL, priority=priority, **kw)


def two_provider_config(
    eu: OpenAISimulator, us: OpenAISimulator, *routes: Route, **extra: Provider
) -> SidecarConfig:
    """Providers ``mistral-eu`` (FR/FR) and ``openai-us`` (US/US), plus ``extra`` ones."""
    providers = {
        "mistral-eu": provider_for(eu, location="FR", jurisdiction="FR", credential="mistral-eu"),
        "openai-us": provider_for(us, location="US", jurisdiction="US", credential="openai-us"),
        **extra,
    }
    return SidecarConfig(
        namespace="team-a", providers=providers, routes={r.name: r for r in routes}
    )


CREDENTIALS = {"mistral-eu": EU_KEY, "openai-us": US_KEY}
ANTHROPIC_KEY = "sk-ant-simulated-key-0003"
THREE_CREDENTIALS = {**CREDENTIALS, "anthropic-us": ANTHROPIC_KEY}
CLAUDE_MODEL = "claude-sonnet-4-5"


def anthropic_provider(sim: AnthropicSimulator) -> Provider:
    """The Anthropic simulator as provider ``anthropic-us`` (US/US, credential of that name)."""
    return Provider(
        api="anthropic",
        endpoint=sim.url,
        location="US",
        jurisdiction="US",
        credential="anthropic-us",
    )


def claude_and_mistral(claude: AnthropicSimulator, eu: OpenAISimulator) -> dict[str, Provider]:
    """Providers ``anthropic-us`` (the Anthropic simulator) and ``mistral-eu`` (FR/FR)."""
    return {
        "anthropic-us": anthropic_provider(claude),
        "mistral-eu": provider_for(eu, location="FR", jurisdiction="FR", credential="mistral-eu"),
    }


# Their credentials, by file name.
CLAUDE_AND_MISTRAL_KEYS = {"anthropic-us": ANTHROPIC_KEY, "mistral-eu": EU_KEY}


def three_provider_config(
    eu: OpenAISimulator,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
    timeouts: Timeouts = FAST,
) -> SidecarConfig:
    """mistral-eu, openai-us and ``anthropic-us`` (the Anthropic simulator), with routes
    ``chat`` (mistral-eu, then openai-us), ``embed`` (mistral-embed) and ``claude``.
    Credentials: :data:`THREE_CREDENTIALS`."""
    return two_provider_config(
        eu,
        us,
        route("chat", eu_target(0), us_target(1), timeouts=timeouts),
        route("embed", Target(provider="mistral-eu", model="mistral-embed")),
        route("claude", Target(provider="anthropic-us", model=CLAUDE_MODEL), timeouts=timeouts),
        **{"anthropic-us": anthropic_provider(claude)},
    )


# -- a running sidecar -------------------------------------------------------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class RunningSidecar:
    """A started :class:`Sidecar` with its directories, audit file and helpers."""

    def __init__(
        self, lt: LoopThread, sidecar: Sidecar, root: Path, audit_path: Path | None = None
    ) -> None:
        self.lt = lt
        self.sidecar = sidecar
        self.url = sidecar.url
        self.base_url = self.url + "/v1"
        self.config_dir = sidecar.config_dir
        self.credentials_dir = sidecar.credentials_dir
        self.audit_path = audit_path or root / "audit.jsonl"

    @property
    def runtime(self) -> Any:
        return self.sidecar.runtime

    # clients
    def client(self, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20, **kw
        )

    def async_client(self, **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20, **kw
        )

    def raw(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
    ) -> Raw:
        """One plain HTTP request (no SDK in between), made on the servers' loop.

        ``content-type: application/json`` is sent unless ``headers`` sets it; a list of
        pairs sends a header once per pair (repeated headers)."""
        sent = CIMultiDict({"content-type": "application/json"})
        pairs = headers.items() if isinstance(headers, dict) else headers or []
        if any(name.lower() == "content-type" for name, _ in pairs):
            sent.popall("content-type", None)
        for name, value in pairs:
            sent.add(name, value)

        async def go() -> Raw:
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    method,
                    self.url + path,
                    data=orjson.dumps(json) if json is not None else data,
                    headers=sent,
                ) as resp,
            ):
                body = await resp.read()
                return Raw(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)

        return self.lt.run(go())

    def metrics(self) -> str:
        resp = self.raw("GET", "/metrics")
        assert resp.status == 200
        return resp.body.decode()

    def metric(self, name: str, **labels: str) -> float:
        """Value of one counter series in ``/metrics`` (0 when absent)."""
        for line in self.metrics().splitlines():
            m = re.fullmatch(r"([^{\s]+)(\{.*\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            found = dict(re.findall(r'([\w.]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(m.group(3))
        return 0.0

    # audit
    def audit(self) -> list[dict[str, Any]]:
        """The request records written so far (the chain's checkpoint lines left out)."""
        return [line for line in self.audit_lines() if line.get("kind") != "checkpoint"]

    def audit_lines(self) -> list[dict[str, Any]]:
        """Every line of the audit trail: request records and checkpoints."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.strip()]

    def audit_for(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The audit record of one request (polls: it is flushed after the response)."""

        def find() -> dict[str, Any] | None:
            return next((r for r in self.audit() if r["requestId"] == request_id), None)

        return wait_for(find, timeout, f"audit record {request_id}")  # type: ignore[no-any-return]

    def wait_audit(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (records := self.audit()) and len(records) >= count and records,
            timeout,
            f"{count} audit records",
        )

    # config
    def write_config(
        self, config: SidecarConfig | bytes | None, credentials: dict[str, str] | None = None
    ) -> SidecarConfig | None:
        """Write (atomically) a new config and/or credentials; returns the sealed config."""
        return write_files(self.config_dir, self.credentials_dir, config, credentials)

    def serving_hash(self) -> str | None:
        snap = self.runtime.snapshot
        return None if snap is None else str(snap.config.hash)


def write_files(
    config_dir: Path,
    credentials_dir: Path,
    config: SidecarConfig | bytes | None,
    credentials: dict[str, str] | None,
) -> SidecarConfig | None:
    """Write credentials, then the config, each file atomically (as a kubelet swap would)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    credentials_dir.mkdir(parents=True, exist_ok=True)
    for name, key in (credentials or {}).items():
        _atomic_write(credentials_dir / name, key.encode() + b"\n")
    if config is None:
        return None
    sealed = config.sealed() if isinstance(config, SidecarConfig) else None
    _atomic_write(config_dir / CONFIG_FILE, sealed.to_json() if sealed else config)  # type: ignore[arg-type]
    return sealed


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name("." + path.name + ".tmp")  # dot files are not part of the fingerprint
    tmp.write_bytes(data)
    os.replace(tmp, path)


StartSidecar = Callable[..., RunningSidecar]

# A chat request body shared by the tests.
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="session")
def lt() -> Iterator[LoopThread]:
    loop_thread = LoopThread()
    yield loop_thread
    loop_thread.close()


@pytest.fixture
def eu(lt: LoopThread) -> Iterator[OpenAISimulator]:
    """Simulated provider ``mistral-eu``, in France under French jurisdiction."""
    sim = OpenAISimulator("mistral-eu", api_key=EU_KEY)
    lt.run(sim.start())
    yield sim
    lt.run(sim.stop())


@pytest.fixture
def us(lt: LoopThread) -> Iterator[OpenAISimulator]:
    """Simulated provider ``openai-us``, in the US under US jurisdiction."""
    sim = OpenAISimulator("openai-us", api_key=US_KEY)
    lt.run(sim.start())
    yield sim
    lt.run(sim.stop())


@pytest.fixture
def claude(lt: LoopThread) -> Iterator[AnthropicSimulator]:
    """A simulated Anthropic Messages API, key ``ANTHROPIC_KEY``."""
    sim = AnthropicSimulator("claude-sim", api_key=ANTHROPIC_KEY)
    lt.run(sim.start())
    yield sim
    lt.run(sim.stop())


@pytest.fixture
def start_sidecar(lt: LoopThread, tmp_path: Path) -> Iterator[StartSidecar]:
    """``start_sidecar(config, credentials=CREDENTIALS, **sidecar_kwargs)`` -> RunningSidecar.

    ``config=None`` starts a sidecar with an empty config directory (not ready);
    ``audit_path`` puts its audit file elsewhere than in its own folder.
    """
    started: list[Sidecar] = []

    def start(
        config: SidecarConfig | bytes | None,
        credentials: dict[str, str] | None = None,
        *,
        poll_seconds: float = 0.05,
        audit_path: Path | None = None,
        **kwargs: Any,
    ) -> RunningSidecar:
        root = tmp_path / f"sidecar{len(started)}"
        config_dir, credentials_dir = root / "config", root / "credentials"
        write_files(
            config_dir,
            credentials_dir,
            config,
            CREDENTIALS if credentials is None else credentials,
        )
        audit = audit_path or root / "audit.jsonl"
        sidecar = Sidecar(
            config_dir,
            credentials_dir,
            str(audit),
            poll_seconds=poll_seconds,
            **kwargs,
        )
        lt.run(sidecar.start("127.0.0.1:0"))
        started.append(sidecar)
        return RunningSidecar(lt, sidecar, root, audit)

    yield start
    for sidecar in started:
        lt.run(sidecar.stop())


@pytest.fixture
def sidecar(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> RunningSidecar:
    """A sidecar with route ``chat`` (mistral-eu first, openai-us second) and ``embed``."""
    return start_sidecar(
        two_provider_config(
            eu,
            us,
            route("chat", eu_target(0), us_target(1)),
            route("embed", Target(provider="mistral-eu", model="mistral-embed")),
        )
    )


@contextlib.contextmanager
def serving_format(
    name: str,
    lt: LoopThread,
    start_sidecar: StartSidecar,
    *,
    echo: bool = False,
    jurisdiction: str | None = None,
    data_protection: DataProtectionRules | None = None,
) -> Iterator[tuple[RunningSidecar, Simulator]]:
    """A started simulator of wire format ``name`` (a row of ``_formats.ROWS``) and a sidecar
    serving it as route ``chat``: ``echo`` answers, the provider's ``jurisdiction`` and the
    route's ``data_protection`` rules as given."""
    row = ROWS[name]
    sim = row.simulator()
    sim.configure(echo=echo)
    lt.run(sim.start())
    provider = row.provider(sim.url)
    if jurisdiction is not None:
        provider = provider.model_copy(update={"jurisdiction": jurisdiction})
    chat = route("chat", Target(provider="p", model=row.model))
    config = SidecarConfig(
        namespace="matrix",
        providers={"p": provider},
        routes={"chat": chat.model_copy(update={"data_protection": data_protection})},
    )
    try:
        yield start_sidecar(config, {"p": row.credential}), sim
    finally:
        lt.run(sim.stop())


@pytest.fixture(params=sorted(ROWS))
def served(
    request: pytest.FixtureRequest, lt: LoopThread, start_sidecar: StartSidecar
) -> Iterator[tuple[RunningSidecar, Simulator]]:
    with serving_format(request.param, lt, start_sidecar) as pair:
        yield pair


@pytest.fixture
def three(
    start_sidecar: StartSidecar,
    eu: OpenAISimulator,
    us: OpenAISimulator,
    claude: AnthropicSimulator,
) -> RunningSidecar:
    """A sidecar on :func:`three_provider_config`: route ``chat`` (mistral-eu then
    openai-us), ``embed`` and ``claude`` (the Anthropic simulator)."""
    return start_sidecar(three_provider_config(eu, us, claude), THREE_CREDENTIALS)
