"""The simulated upstream and the five ways of reaching it, each started as its own process.

The upstream of the load phases is the Go program ``hack/upstream``: the Python OpenAI
simulator's wire format at about a third of its CPU per request (18 against 49 µs at c=16,
measured 2026-11-30). On the core it shares with the load generator, the Python one capped
every system near its own req/s. The Python simulator is its fallback and the upstream of
whatever needs faults.

* ``direct``: the load generator talks to the simulated upstream itself;
* ``passthrough``: ``bench/passthrough.py``, the 30-line aiohttp "Python floor";
* ``aiguillage``: ``aiguillage sidecar`` on a config rendered by ``aiguillage render`` from
  ``bench/manifests/`` (EU residency, priority failover over two providers, audit to a file,
  metrics on);
* ``litellm``: LiteLLM's proxy (pinned version, own venv), same upstream, no database, no
  logging callbacks, one worker (``--num_workers 1``: the one core it is given);
* ``portkey``: the Portkey AI gateway (Node, npm package pinned by ``bench/peers/portkey/``),
  one process, ``--headless`` (no log console), no cache, no retries; each request names the
  upstream with Portkey's own headers (``x-portkey-provider: openai``,
  ``x-portkey-custom-host: <upstream>/v1``) and carries the upstream key.

Every system gets the same CPU (one core, pinned once ready) and is one process with one event
loop, so that the comparison is per core.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiguillage.devtools.bench.procs import Memory, Proc, Procs, group_memory, pin_group
from aiguillage.devtools.bench.services import ServiceError, read_ready_line
from aiguillage.devtools.bench.tools import (
    PORTKEY_PACKAGE,
    ROOT,
    NodePackage,
    Program,
    Venv,
    python_upstream,
)

UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-master"
MODEL = "bench-chat"
MANIFESTS = ROOT / "bench" / "manifests"
PLACEHOLDER_ENDPOINT = "http://127.0.0.1:18300"
PROMPT = "Say hello in one short sentence."

SYSTEMS = ("direct", "passthrough", "aiguillage", "litellm", "portkey")
LABELS = {
    "direct": "direct to the upstream",
    "passthrough": "bare aiohttp pass-through",
    "aiguillage": "Aiguillage sidecar",
    "litellm": "LiteLLM proxy",
    "portkey": "Portkey gateway",
}
# Peers: other AI gateways, installed outside the project (own venv, own node_modules).
PEERS = ("litellm", "portkey")


class StartError(RuntimeError):
    """A system did not come up; the message says what it printed."""


def request_body(stream: bool) -> bytes:
    body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class System:
    """A target of the load generator."""

    key: str
    base_url: str  # http://127.0.0.1:PORT
    headers: list[str]  # extra request headers, "Name: value"
    proc: Proc | None = None  # None for "direct" (the upstream is shared, not measured)
    start_to_ready_s: float | None = None
    idle: Memory | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


def http_request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except OSError:
        return 0, b""


def wait_ready(proc: Proc, probe: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``probe()`` until true; return seconds since the process was spawned."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive:
            raise StartError(f"{what} exited with {proc.popen.returncode}:\n{proc.tail()}")
        if probe():
            return time.monotonic() - proc.started
        if time.monotonic() > deadline:
            raise StartError(f"{what} not ready after {timeout:.0f}s:\n{proc.tail()}")
        time.sleep(0.02)


def settled_memory(proc: Proc, cpus: str | None) -> Memory:
    """Pin the started system to its CPUs, then its memory 1 s later (nothing sent meanwhile).

    Systems start unpinned (on every core: start-up time is not what the pinning is for)
    and are pinned once ready, with all their processes and threads.
    """
    pin_group(proc.pid, cpus)
    time.sleep(1.0)
    return group_memory(proc.pid)


# -- the upstream ------------------------------------------------------------------------------


def start_upstream(
    procs: Procs,
    *,
    cpus: str | None,
    chunks: int,
    interval: float,
    timeout: float = 30,
    name: str = "upstream",
    key: str = UPSTREAM_KEY,
    program: Program | None = None,
) -> tuple[Proc, str]:
    """A simulated OpenAI-compatible provider in its own process; returns it and its URL.

    ``program`` is the Go upstream of `tools.build_upstream` or the Python simulator (the
    default: it alone injects faults, as the soak needs)."""
    program = program or python_upstream()
    argv = [
        *program.argv, "--name", name, "--port", "0", "--api-key", key,
        "--chunks", str(chunks), "--chunk-interval", str(interval),
    ]  # fmt: skip
    # In the load generator's session: see `procs` (autogroups sharing one core).
    proc = procs.spawn(name, argv, cpus=cpus, stdout_pipe=True, same_session=True)
    try:
        return proc, read_ready_line(proc, "the simulated upstream", timeout)
    except ServiceError as exc:
        raise StartError(str(exc)) from None


@contextlib.contextmanager
def stream_shape(upstream_url: str, *, chunks: int, interval: float) -> Iterator[None]:
    """The upstream's streams have ``chunks`` deltas ``interval`` s apart inside the block,
    and their previous shape after it (through the simulator's admin API)."""
    before = json.loads(http_request(f"{upstream_url}/_sim/config")[1] or b"{}")
    _set_shape(upstream_url, chunks, interval)
    try:
        yield
    finally:
        _set_shape(upstream_url, before.get("chunks", chunks), before.get("chunk_interval", 0.0))


def _set_shape(upstream_url: str, chunks: int, interval: float) -> None:
    body = json.dumps({"chunks": chunks, "chunk_interval": interval}).encode()
    status, answer = http_request(f"{upstream_url}/_sim/config", body)
    if status != 200:
        raise StartError(f"the upstream refused its new stream shape ({status}): {answer!r}")


# -- the systems -------------------------------------------------------------------------------


def direct(upstream_url: str) -> System:
    return System("direct", upstream_url, [f"Authorization: Bearer {UPSTREAM_KEY}"])


def _probe_chat(url: str, headers: dict[str, str]) -> Callable[[], bool]:
    def probe() -> bool:
        status, _ = http_request(url, request_body(False), headers)
        return status == 200

    return probe


def start_passthrough(procs: Procs, upstream_url: str, *, cpus: str | None) -> System:
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / "passthrough.py"), upstream_url, str(port)]
    proc = procs.spawn("passthrough", argv)
    system = System("passthrough", f"http://127.0.0.1:{port}", direct(upstream_url).headers, proc)
    auth = {"Authorization": f"Bearer {UPSTREAM_KEY}"}
    system.start_to_ready_s = wait_ready(
        proc, _probe_chat(system.chat_url, auth), 30, "the pass-through"
    )
    system.idle = settled_memory(proc, cpus)
    system.notes.append("ready = first successful request")
    return system


def render_sidecar_config(upstream_url: str, out: Path, *, model: str = MODEL) -> str:
    """``aiguillage render`` of bench/manifests/ for the given upstream; returns the hash.

    ``model`` renames the route's model (the reload measurement needs distinct configs).
    """
    from aiguillage.operator import commands  # the CLI's own function, in-process

    sources = out / "manifests"
    sources.mkdir(parents=True, exist_ok=True)
    for path in sorted(MANIFESTS.glob("*.yaml")):
        text = path.read_text().replace(PLACEHOLDER_ENDPOINT, upstream_url)
        if model != MODEL:
            text = text.replace(f"model: {MODEL}", f"model: {model}")
        (sources / path.name).write_text(text)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as e:
        code = commands.render(sorted(sources.glob("*.yaml")), "bench", out, "aiguillage-system")
    if code != 0:
        raise StartError(f"aiguillage render failed:\n{e.getvalue()}")
    config = json.loads((out / "config" / "config.json").read_text())
    return str(config["hash"])


def sidecar_argv(config_dir: Path, port: int) -> list[str]:
    from aiguillage.devtools import processes

    return processes.aiguillage(
        "sidecar", "--config-dir", str(config_dir), "--listen", f"127.0.0.1:{port}"
    )


def sidecar_env(audit_log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIGUILLAGE_AUDIT_LOG": str(audit_log),
        "POD_NAMESPACE": "bench",
        "POD_NAME": "bench-0",
    }


def start_sidecar(procs: Procs, upstream_url: str, workdir: Path, *, cpus: str | None) -> System:
    """The sidecar as the benchmark compares it: bench/manifests/ rendered, audit to a file,
    metrics on (no tracing: no OTLP endpoint in its environment)."""
    root = workdir / "sidecar"
    render_sidecar_config(upstream_url, root)
    system = run_sidecar(
        procs, root / "config", "aiguillage-sidecar",
        sidecar_env(root / "audit.jsonl"), cpus=cpus,
    )  # fmt: skip
    system.notes.append("ready = GET /readyz 200; audit to a file, metrics on")
    return system


def run_sidecar(
    procs: Procs,
    config_dir: Path,
    name: str,
    env: dict[str, str],
    *,
    cpus: str | None,
    stdout_pipe: bool = False,
    cwd: Path | None = None,
) -> System:
    """Start ``aiguillage sidecar`` on ``config_dir`` and wait until ``/readyz`` says 200."""
    port = free_port()
    proc = procs.spawn(
        name, sidecar_argv(config_dir, port), env=env, stdout_pipe=stdout_pipe, cwd=cwd
    )
    system = System("aiguillage", f"http://127.0.0.1:{port}", [], proc)
    readyz = f"{system.base_url}/readyz"
    system.start_to_ready_s = wait_ready(
        proc, lambda: http_request(readyz)[0] == 200, 30, f"the sidecar {name}"
    )
    system.idle = settled_memory(proc, cpus)
    return system


def litellm_config(upstream_url: str) -> dict[str, object]:
    return {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "openai/sim-small",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
        "litellm_settings": {"set_verbose": False, "json_logs": False},
    }


def litellm_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DIRECT_URL") and not k.startswith("LITELLM_")
    }
    # Use the cost map shipped in the package: without this LiteLLM fetches it from the
    # internet at start-up (all traffic here must stay on loopback).
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["LITELLM_LOG"] = "ERROR"
    env["PYTHONUNBUFFERED"] = "1"  # its log file then shows how far start-up got
    return env


def start_litellm(
    procs: Procs,
    venv: Venv,
    upstream_url: str,
    workdir: Path,
    *,
    cpus: str | None,
    workers: int,
    timeout: float = 600,
) -> System:
    root = workdir / "litellm"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(json.dumps(litellm_config(upstream_url), indent=2))  # JSON is YAML
    port = free_port()
    argv = [
        str(venv.bin("litellm")), "--config", str(config), "--host", "127.0.0.1",
        "--port", str(port), "--num_workers", str(workers),
    ]  # fmt: skip
    proc = procs.spawn("litellm", argv, env=litellm_env(), cwd=root)
    headers = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
    system = System(
        "litellm", f"http://127.0.0.1:{port}", [f"Authorization: Bearer {LITELLM_MASTER_KEY}"], proc
    )
    system.start_to_ready_s = wait_ready(
        proc, _probe_chat(system.chat_url, headers), timeout, "LiteLLM"
    )
    system.idle = settled_memory(proc, cpus)
    system.notes.append(f"ready = first successful request; {workers} worker(s)")
    return system


def portkey_headers(upstream_url: str) -> list[str]:
    """What a client of the Portkey gateway sends to reach an OpenAI-compatible upstream."""
    return [
        "x-portkey-provider: openai",
        f"x-portkey-custom-host: {upstream_url}/v1",
        f"Authorization: Bearer {UPSTREAM_KEY}",
    ]


def portkey_argv(package: NodePackage, port: int) -> list[str]:
    server = package.module(PORTKEY_PACKAGE) / "build" / "start-server.js"
    return [package.node, str(server), f"--port={port}", "--headless"]


def portkey_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "PORTKEY_"))}
    # No proxy and no Redis cache even if the environment has them.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "REDIS_CONNECTION_STRING",
    ):
        env.pop(name, None)
    return env


def start_portkey(
    procs: Procs, package: NodePackage, upstream_url: str, *, cpus: str | None, timeout: float = 60
) -> System:
    port = free_port()
    proc = procs.spawn("portkey", portkey_argv(package, port), env=portkey_env())
    headers = portkey_headers(upstream_url)
    system = System("portkey", f"http://127.0.0.1:{port}", headers, proc)
    probe_headers = dict(h.split(": ", 1) for h in headers)
    system.start_to_ready_s = wait_ready(
        proc, _probe_chat(system.chat_url, probe_headers), timeout, "the Portkey gateway"
    )
    system.idle = settled_memory(proc, cpus)
    system.notes.append(f"ready = first successful request; Node {package.node_version}, 1 process")
    return system
