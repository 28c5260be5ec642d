"""A mixed run: real sidecar processes in several namespaces, simulated providers, and traffic
with failovers, refusals and provider failures.

What the audit report, the dashboards and the alerts are tested on (and what the examples
in ``docs/audit.md`` and ``docs/observability.md`` were made with): four sidecars, each the
real ``aiguillage sidecar`` command with the identity an injected pod has (namespace, pod,
service account from the environment), a signing key per namespace, its audit trail in a
file and its log (with the checkpoint copies) in another; four simulated providers in France,
Germany and the US (OpenAI and Anthropic wire formats). The traffic, drawn from a seeded
random generator, mixes whole answers and streams, routes with and without residency rules,
injected provider errors and rate limits (failovers, circuits opening), and requests whose
residency header no target can meet (refused). AIPolicy limits as the operator compiles them:
a small monthly budget on support's sovereign-chat and a requests-per-minute limit on
marketing's copy (both counted per sidecar: no shared store), an Audit-mode finding on
marketing's US target, and finance's sidecar given a shared store (Redis) nobody listens on,
under a rate limit that fails open: served, each failure counted.

``python -m aiguillage.devtools.mixedrun --out DIR`` runs it once and leaves in ``DIR`` the
audit files (``audit/``), the sidecars' logs and the public keys (``public-keys/``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from aiguillage.devtools import processes
from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.base import Simulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.devtools.spawning import free_ports
from aiguillage.devtools.waiting import answers, wait_for
from aiguillage.operator.auditkeys import new_key_pair, public_entry
from aiguillage.sidecar.config import (
    CONFIG_FILE,
    CircuitBreaker,
    Limit,
    LimitScope,
    PolicyFinding,
    Pricing,
    Provider,
    Residency,
    Route,
    SharedStore,
    SidecarConfig,
    Target,
    Timeouts,
)
from aiguillage.sidecar.residency import EU

# name -> (wire format, location, jurisdiction, model, EUR per million input/output tokens)
PROVIDERS: dict[str, tuple[str, str, str, str, str, str]] = {
    "mistral-eu": ("openai", "FR", "FR", "mistral-small-latest", "0.10", "0.30"),
    "ionos-de": ("openai", "DE", "DE", "llama-3.3-70b", "0.60", "0.60"),
    "openai-us": ("openai", "US", "US", "gpt-4o-mini", "0.14", "0.55"),
    "claude-us": ("anthropic", "US", "US", "claude-sonnet-4-5", "2.80", "13.80"),
}
EU_ONLY = Residency(locations=EU, jurisdictions=EU)
# namespace -> routes (model name -> (residency, providers in priority order))
ROUTES: dict[str, dict[str, tuple[Residency, tuple[str, ...]]]] = {
    "support": {
        "summarizer": (Residency(), ("mistral-eu", "openai-us")),
        "sovereign-chat": (EU_ONLY, ("mistral-eu", "ionos-de")),
    },
    "marketing": {
        "copy": (Residency(), ("openai-us", "claude-us")),
        "eu-copy": (Residency(locations=EU), ("ionos-de", "mistral-eu")),
    },
    "finance": {
        "ledger": (EU_ONLY, ("ionos-de",)),
    },
}
# (namespace, service account, pod)
WORKLOADS = [
    ("support", "summarizer", "summarizer-7d9f-x2"),
    ("support", "triage", "triage-5c8b-q7"),
    ("marketing", "copywriter", "copywriter-6f4a-m1"),
    ("finance", "ledger-bot", "ledger-bot-59cd-k3"),
]
# (namespace, route) -> the limits compiled into it.
LIMITS: dict[tuple[str, str], tuple[Limit, ...]] = {
    ("support", "sovereign-chat"): (
        Limit(policy="team-budgets", scope=LimitScope.ROUTE, budget_eur_per_month=Decimal("0.001")),
    ),
    ("marketing", "copy"): (
        Limit(policy="rate-caps", scope=LimitScope.ROUTE, requests_per_minute=30),
    ),
    ("finance", "ledger"): (
        Limit(policy="rate-caps", scope=LimitScope.NAMESPACE, requests_per_minute=10_000),
    ),
}
# (namespace, route, provider) -> what an Audit-mode AIPolicy says of that target.
FINDINGS = {
    ("marketing", "copy", "openai-us"): PolicyFinding(
        policy="eu-only-audit",
        reason='provider "openai-us" is located in US, outside AIPolicy eu-only-audit '
        "residency.locations [EU]",
    ),
}
KEYS = {name: f"sk-simulated-{name}" for name in PROVIDERS}
# A provider whose key the sidecar cannot use (not printable text), in finance's config: it
# takes only itself out (aiguillage_config_providers_unusable), as a bad Secret would.
UNUSABLE = "legacy-gateway"
TIMEOUTS = Timeouts(connect=2.0, first_token=5.0, stream_idle=5.0, total=20.0)


@dataclass
class RunningSidecar:
    namespace: str
    service_account: str
    pod: str
    url: str
    audit: Path
    child: processes.Child

    @property
    def routes(self) -> list[str]:
        return sorted(ROUTES[self.namespace])

    @property
    def config_file(self) -> Path:
        return self.audit.parent.parent / "pods" / self.pod / "config" / CONFIG_FILE


@dataclass
class MixedRun:
    """Providers and sidecars of a mixed run (:meth:`start`, :meth:`traffic`, :meth:`stop`)."""

    workdir: Path
    seed: int = 1
    checkpoint_records: int = 50
    checkpoint_seconds: float = 5.0
    loop: LoopThread = field(default_factory=LoopThread)
    simulators: dict[str, Simulator] = field(default_factory=dict)
    sidecars: list[RunningSidecar] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)  # what the traffic asked for
    # The request ids (x-request-id, which the sidecars audit) of each kind of request sent.
    sent_ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def audit_dir(self) -> Path:
        return self.workdir / "audit"

    @property
    def public_keys(self) -> Path:
        return self.workdir / "public-keys"

    def start(self) -> MixedRun:
        for sub in ("audit", "public-keys", "keys", "logs"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for name, (api, *_rest) in PROVIDERS.items():
            kind = AnthropicSimulator if api == "anthropic" else OpenAISimulator
            sim = kind(name, api_key=KEYS[name], chunks=3)
            self.loop.run(sim.start())
            self.simulators[name] = sim
        ports = free_ports("127.0.0.1", len(WORKLOADS))
        for (namespace, account, pod), port in zip(WORKLOADS, ports, strict=True):
            self.sidecars.append(self._sidecar(namespace, account, pod, port))
        for sc in self.sidecars:
            ready = functools.partial(answers, f"{sc.url}/readyz")
            wait_for(ready, timeout=60, what=f"sidecar {sc.pod} ready")
        return self

    def _sidecar(self, namespace: str, account: str, pod: str, port: int) -> RunningSidecar:
        root = self.workdir / "pods" / pod
        config_dir, credentials_dir = root / "config", root / "credentials"
        config_dir.mkdir(parents=True, exist_ok=True)
        credentials_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / CONFIG_FILE).write_bytes(self.config(namespace).sealed().to_json())
        for name, key in KEYS.items():
            (credentials_dir / name).write_text(key + "\n")
        (credentials_dir / UNUSABLE).write_bytes(b"sk-\x01\x02-not-text\n")
        audit = self.audit_dir / f"{pod}.jsonl"
        env = {
            **os.environ,
            "POD_NAMESPACE": namespace,
            "POD_NAME": pod,
            "POD_SERVICE_ACCOUNT": account,
            "AIGUILLAGE_AUDIT_LOG": str(audit),
            "AIGUILLAGE_AUDIT_KEY": str(self._signing_key(namespace)),
            "AIGUILLAGE_AUDIT_CHECKPOINT_RECORDS": str(self.checkpoint_records),
            "AIGUILLAGE_AUDIT_CHECKPOINT_SECONDS": str(self.checkpoint_seconds),
        }
        argv = processes.aiguillage(
            "sidecar",
            f"--config-dir={config_dir}",
            f"--credentials-dir={credentials_dir}",
            f"--listen=127.0.0.1:{port}",
        )
        child = processes.Child(pod, argv, env, self.workdir / "logs" / f"{pod}.log").start()
        return RunningSidecar(namespace, account, pod, f"http://127.0.0.1:{port}", audit, child)

    def _signing_key(self, namespace: str) -> Path:
        path = self.workdir / "keys" / f"{namespace}.pem"
        if not path.exists():
            pair = new_key_pair()
            path.write_bytes(pair.private_pem)
            name, pem = public_entry(namespace, pair)
            (self.public_keys / name).write_text(pem)
        return path

    def config(self, namespace: str) -> SidecarConfig:
        providers = {}
        for name, (api, location, jurisdiction, *_rest) in PROVIDERS.items():
            sim = self.simulators[name]
            providers[name] = Provider(
                api=api,
                endpoint=sim.url + ("" if api == "anthropic" else "/v1"),
                location=location,
                jurisdiction=jurisdiction,
                credential=name,
            )
        if namespace == "finance":
            providers[UNUSABLE] = Provider(
                api="openai",
                endpoint=self.simulators["mistral-eu"].url + "/v1",
                location="NL",
                jurisdiction="NL",
                credential=UNUSABLE,
            )
        routes = {}
        for model, (residency, chosen) in ROUTES[namespace].items():
            targets = []
            for priority, name in enumerate(chosen):
                _api, _loc, _jur, target_model, price_in, price_out = PROVIDERS[name]
                finding = FINDINGS.get((namespace, model, name))
                targets.append(
                    Target(
                        provider=name,
                        model=target_model,
                        priority=priority,
                        pricing=Pricing(
                            input_per_million=Decimal(price_in),
                            output_per_million=Decimal(price_out),
                        ),
                        policy_audit=(finding,) if finding else (),
                    )
                )
            routes[model] = Route(
                name=model,
                residency=residency,
                targets=tuple(targets),
                timeouts=TIMEOUTS,
                circuit_breaker=CircuitBreaker(consecutive_failures=3, cooldown=0.5),
                limits=LIMITS.get((namespace, model), ()),
            )
        store = None
        if namespace == "finance":
            (nobody,) = free_ports("127.0.0.1", 1)
            store = SharedStore(url=f"redis://127.0.0.1:{nobody}/0")
        return SidecarConfig(
            namespace=namespace, providers=providers, routes=routes, shared_store=store
        )

    # -- traffic ---------------------------------------------------------------------------

    def traffic(self, requests: int, concurrency: int = 8, seconds: float = 0.0) -> Counter[int]:
        """Send ``requests`` mixed requests, spread evenly over ``seconds`` (0: as fast as
        ``concurrency`` allows); returns how many got each HTTP status."""
        return self.loop.run(self._traffic(requests, concurrency, seconds), timeout=600 + seconds)

    async def _traffic(self, requests: int, concurrency: int, seconds: float) -> Counter[int]:
        rng = random.Random(self.seed)
        statuses: Counter[int] = Counter()
        limit = asyncio.Semaphore(concurrency)
        plan = [self._draw(rng, i) for i in range(requests)]
        async with aiohttp.ClientSession() as session:

            async def one(step: tuple[RunningSidecar, dict[str, Any], dict[str, str], str]) -> None:
                sidecar, body, headers, what = step
                self.sent[what] += 1
                self.sent_ids.setdefault(what, []).append(headers["x-request-id"])
                async with limit:
                    if what == "fault":
                        self._inject(rng)
                    try:
                        async with session.post(
                            f"{sidecar.url}/v1/chat/completions",
                            json=body,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=60),
                        ) as resp:
                            await resp.read()
                            statuses[resp.status] += 1
                    except aiohttp.ClientError:
                        statuses[0] += 1

            if not seconds:
                await asyncio.gather(*(one(step) for step in plan))
                return statuses
            loop = asyncio.get_running_loop()
            begin, tasks = loop.time(), []
            for index, step in enumerate(plan):
                await asyncio.sleep(max(0.0, begin + seconds * index / requests - loop.time()))
                tasks.append(asyncio.create_task(one(step)))
            await asyncio.gather(*tasks)
        return statuses

    def ask(self, pod: str, route: str, count: int) -> Counter[int]:
        """Send ``count`` plain requests for ``route`` to the sidecar of ``pod``, one by one."""
        sidecar = next(sc for sc in self.sidecars if sc.pod == pod)

        async def go() -> Counter[int]:
            statuses: Counter[int] = Counter()
            body = {"model": route, "messages": [{"role": "user", "content": "hello"}]}
            async with aiohttp.ClientSession() as session:
                for _ in range(count):
                    url = f"{sidecar.url}/v1/chat/completions"
                    async with session.post(url, json=body) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
            return statuses

        return self.loop.run(go())

    def _draw(
        self, rng: random.Random, index: int
    ) -> tuple[RunningSidecar, dict[str, Any], dict[str, str], str]:
        sidecar = rng.choice(self.sidecars)
        route = rng.choice(sidecar.routes)
        body: dict[str, Any] = {
            "model": route,
            "messages": [
                {"role": "user", "content": f"Question {index}: " + "words " * rng.randint(5, 200)}
            ],
            "max_tokens": rng.choice([64, 256, 1024]),
        }
        headers: dict[str, str] = {"x-request-id": f"mixed-{self.seed}-{index}"}
        roll = rng.random()
        what = "chat"
        if roll < 0.2:
            body["stream"] = True
            what = "stream"
        elif roll < 0.26:
            headers["x-aiguillage-residency"] = "CH"  # no target is in Switzerland: refused
            what = "residency_refusal"
        elif roll < 0.28:
            headers["x-aiguillage-residency"] = "Atlantis"  # not a place: a bad request
            what = "bad_header"
        elif roll < 0.31:
            what = "fault"  # a provider fails before this request: failovers
        return sidecar, body, headers, what

    def _inject(self, rng: random.Random) -> None:
        name = rng.choice(["mistral-eu", "openai-us", "ionos-de", "mistral-eu"])
        fault: dict[str, Any] = rng.choice(
            [
                {"kind": "status", "status": 503},
                {"kind": "status", "status": 429, "retry_after": 1},
                {"kind": "status", "status": 500},
            ]
        )
        self.simulators[name].set_faults([fault] * rng.randint(1, 2))

    # -- the end -----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM every sidecar (they drain and write their final checkpoint), stop the
        providers and the loop."""
        for sc in self.sidecars:
            sc.child.stop()
        for sim in self.simulators.values():
            if sim.started:
                self.loop.run(sim.stop())
        self.loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to leave the run's files")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seconds", type=float, default=0.0, help="spread the requests over this long"
    )
    args = parser.parse_args(argv)
    run = MixedRun(args.out, seed=args.seed).start()
    started = time.monotonic()
    try:
        statuses = run.traffic(args.requests, seconds=args.seconds)
    finally:
        run.stop()
    took = time.monotonic() - started
    print(
        f"{args.requests} requests through {len(run.sidecars)} sidecars in {took:.1f}s: "
        + ", ".join(f"HTTP {s}: {n}" for s, n in sorted(statuses.items()))
    )
    print(
        f"audit trails in {run.audit_dir}/, sidecar logs in {args.out / 'logs'}/, "
        f"public keys in {run.public_keys}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
