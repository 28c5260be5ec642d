"""What the benchmark needs outside the project's venv, built or installed once into the cache.

* the Go load generator (``hack/loadgen``, standard library only), built with the local
  toolchain into ``<cache>/loadgen/loadgen-<source hash>``; when it cannot be built, the
  async Python load generator (`aiguillage.devtools.bench.pyloadgen`) is used instead;
* the Go simulated upstream (``hack/upstream``: the Python OpenAI simulator's wire format for
  chat completions, at about a third of its CPU per request, so that the upstream is not what
  limits the systems measured through it), built the same way into
  ``<cache>/upstream/upstream-<source hash>``; the Python simulator is the fallback;
* a venv with LiteLLM's proxy (``litellm[proxy]``, pinned) — kept apart from the project's;
* a venv with the tools that must not weigh on the project's venv: matplotlib (charts) and
  py-spy (profile);
* the Portkey AI gateway (npm ``@portkey-ai/gateway``, Node), from the ``package.json`` and
  ``package-lock.json`` committed in ``bench/peers/portkey/``, installed with ``npm ci`` into
  ``<cache>/portkey-<lock hash>``.

``<cache>`` is ``$AIGUILLAGE_CACHE``, else ``$XDG_CACHE_HOME/aiguillage``, else
``~/.cache/aiguillage`` (as for the Kubernetes binaries).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools.cache import cache_root

ROOT = Path(__file__).resolve().parents[4]
LOADGEN_SRC = ROOT / "hack" / "loadgen"
UPSTREAM_SRC = ROOT / "hack" / "upstream"
PORTKEY_SRC = ROOT / "bench" / "peers" / "portkey"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
NODE_MIN_MAJOR = 18  # the gateway's own floor (its start-server uses global fetch)

# The newest LiteLLM whose `[proxy]` extra installs from PyPI as this machine reaches it:
# 1.108.8+ pin `litellm-proxy-extras` > 0.4.110 and 1.110+ need `litellm-proxy`, neither of which
# the registry serves here (checked 2026-11-26 with `pip index versions`). 1.107.0 was a
# compromised release: never use it.
LITELLM_VERSION = "1.108.7"
LITELLM_REQUIREMENTS = (f"litellm[proxy]=={LITELLM_VERSION}",)
TOOLS_REQUIREMENTS = ("matplotlib==3.11.2", "py-spy==0.4.3")


def cache_dir() -> Path:
    return cache_root()


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


# -- Go programs: load generator and upstream ------------------------------------------------


@dataclass(frozen=True)
class Program:
    """A benchmark program outside the venv: the Go build, or its Python fallback."""

    argv: list[str]  # the command, to which the run's flags are appended
    kind: str  # "go" or "python"
    note: str  # how it was obtained (for the report)


# The load generator is a `Program` (the name most modules use for it).
LoadGenerator = Program


def go_version() -> str | None:
    go = shutil.which("go")
    if go is None:
        return None
    try:
        out = subprocess.run(
            [go, "version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


def build_go(source: Path, name: str) -> Path | str:
    """``source`` (a standard-library-only Go module) built once per version of its files into
    ``<cache>/<name>/<name>-<source hash>``: the executable, or why it could not be built."""
    digest = hashlib.sha256()
    for path in [*sorted(source.glob("*.go")), source / "go.mod"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = cache_dir() / name / f"{name}-{digest.hexdigest()[:12]}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = shutil.which("go")
    if go is None:
        return "no Go toolchain"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    began = time.monotonic()
    result = subprocess.run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), "."],
        cwd=source, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        return f"go build in {source} failed:\n{result.stderr.strip()}"
    tmp.replace(target)
    say(f"built {source.name} in {time.monotonic() - began:.1f}s: {target}")
    return target


def build_loadgen() -> LoadGenerator:
    """The Go load generator (built once per source version), else the Python fallback."""
    built = build_go(LOADGEN_SRC, "loadgen")
    if isinstance(built, Path):
        return Program([str(built)], "go", f"Go load generator {built}")
    say(f"{built}: using the Python load generator")
    return Program(
        [sys.executable, "-m", "aiguillage.devtools.bench.pyloadgen"],
        "python",
        "async Python (aiohttp) load generator",
    )


def python_upstream() -> Program:
    """The Python OpenAI simulator (fault injection, every endpoint; ~3x the Go one's CPU)."""
    return Program(
        [sys.executable, "-m", "aiguillage.devtools.simulators", "--kind", "openai"],
        "python",
        "Python OpenAI simulator (aiohttp, `python -m aiguillage.devtools.simulators`)",
    )


def build_upstream() -> Program:
    """The Go simulated upstream (``hack/upstream``), else the Python simulator.

    Both take ``--name --port --api-key --chunks --chunk-interval`` and print ``READY <url>``.
    """
    built = build_go(UPSTREAM_SRC, "upstream")
    if isinstance(built, Path):
        return Program([str(built)], "go", f"Go simulated upstream {built}")
    say(f"{built}: using the Python simulator as the upstream")
    fallback = python_upstream()
    return Program(fallback.argv, fallback.kind, f"{fallback.note}; the Go one: {built}")


# -- venvs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Venv:
    path: Path
    requirements: tuple[str, ...]
    install_seconds: float | None  # how long the (first) install took
    installed_now: bool

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def ensure_venv(name: str, requirements: tuple[str, ...]) -> Venv:
    """A venv under the cache with exactly ``requirements`` installed (once; a stamp says so).

    Raises `RuntimeError` with pip's output if the installation fails.
    """
    path = cache_dir() / name
    stamp = path / ".bench-stamp.json"
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = {}
    if recorded.get("requirements") == list(requirements) and (path / "bin" / "python").exists():
        return Venv(path, requirements, recorded.get("install_seconds"), installed_now=False)
    say(f"installing {' '.join(requirements)} into {path} (once) ...")
    began = time.monotonic()
    if not (path / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    for args in (["install", "--upgrade", "pip"], ["install", *requirements]):
        result = subprocess.run(
            [*pip, *args], capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pip {' '.join(args)} failed in {path}:\n{result.stdout}\n{result.stderr}"
            )
    seconds = round(time.monotonic() - began, 1)
    stamp.write_text(json.dumps({"requirements": list(requirements), "install_seconds": seconds}))
    say(f"installed into {path} in {seconds:.0f}s")
    return Venv(path, requirements, seconds, installed_now=True)


# -- Node peers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePackage:
    """An npm package installed from a committed lock file, and the Node that runs it."""

    path: Path  # the install directory (holds node_modules/)
    node: str  # the node executable
    node_version: str  # "v20.20.2"
    version: str  # the installed package's version, read from its package.json
    install_seconds: float | None

    def module(self, name: str) -> Path:
        return self.path / "node_modules" / name


def node_version(node: str) -> str:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.strip()


def ensure_portkey() -> NodePackage:
    """The Portkey gateway installed from ``bench/peers/portkey/`` (once per lock file).

    Raises `RuntimeError` saying what is missing (Node, npm) or what npm printed.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(
            "Node.js and npm are needed for the Portkey peer (Debian: apt-get install nodejs npm)"
        )
    version = node_version(node)
    major = int(version.lstrip("v").split(".", 1)[0] or 0)
    if major < NODE_MIN_MAJOR:
        raise RuntimeError(f"Portkey needs Node >= {NODE_MIN_MAJOR}, found {version} at {node}")
    lock = (PORTKEY_SRC / "package-lock.json").read_bytes()
    manifest = (PORTKEY_SRC / "package.json").read_bytes()
    digest = hashlib.sha256(manifest + lock).hexdigest()[:12]
    path = cache_dir() / f"portkey-{digest}"
    stamp = path / ".bench-stamp.json"
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = {}
    seconds: float | None = recorded.get("install_seconds")
    if not recorded:
        say(f"installing {PORTKEY_PACKAGE} with npm ci into {path} (once) ...")
        began = time.monotonic()
        path.mkdir(parents=True, exist_ok=True)
        (path / "package.json").write_bytes(manifest)
        (path / "package-lock.json").write_bytes(lock)
        # --ignore-scripts: the gateway's only install script is patch-package, which has
        # nothing to patch in the published package.
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=path, capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"npm ci failed in {path}:\n{result.stdout}\n{result.stderr}")
        seconds = round(time.monotonic() - began, 1)
        stamp.write_text(json.dumps({"install_seconds": seconds}))
        say(f"installed {PORTKEY_PACKAGE} in {seconds:.0f}s")
    package = json.loads((path / "node_modules" / PORTKEY_PACKAGE / "package.json").read_text())
    return NodePackage(path, node, version, str(package["version"]), seconds)
