"""The soak (``make soak``): a million mixed requests, faults injected, nothing may drift or go
missing.

One ``aiguillage sidecar`` process serves route ``soak`` (priority failover from a FR to a DE
provider, two tries each), each provider a simulator in its own process. Three Go load
generators (``hack/loadgen``; Python fallback) send, at the same time, OpenAI chat completions,
OpenAI streams and Anthropic Messages (translated to chat by the sidecar), in the proportions
of :data:`MIX`. Every :data:`FAULT_EVERY` seconds a few faults are queued at each simulator
through its admin API (5xx, 429, connections dropped before the answer, streams reset or broken
mid-way, slow first bytes, first bytes later than the route's deadline), so that about one
request in a hundred meets one. Every few seconds the sidecar's RSS and open file descriptors
are sampled. At the end the sidecar is stopped with SIGTERM (it must drain and exit 0) and its
audit file is read back. The soak passes when:

- RSS and fds are flat: RSS, the mean of the last 10 % of samples within :data:`FLAT_PERCENT`
  of the first 10 %; fds, the baseline (the fewest open in each tenth: pooled connections to
  the providers come and go with bursts of failovers and slow answers, a leak raises the
  floor) within :data:`FLAT_PERCENT` or :data:`FDS_SLACK` descriptors;
- no audit line is lost: exactly one line per request sent, each request id once;
- no 5xx is unexplained: every answer with a status >= 500 is an ``all_targets_failed`` whose
  every attempt failed upstream (or was skipped by an open circuit), and nothing is
  ``internal_error``;
- nothing was logged at ERROR by the sidecar.

It writes ``bench/out/soak/result.json`` and ``docs/soak.md`` (with ``--report``). It is not
part of ``make bench`` (a million requests take longer than the benchmark's budget); ``make
soak REQUESTS=100000`` runs a shorter one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench.procs import Proc, Procs, group_memory
from aiguillage.devtools.bench.systems import (
    StartError,
    free_port,
    http_request,
    sidecar_argv,
    sidecar_env,
    start_upstream,
    wait_ready,
)
from aiguillage.devtools.bench.tools import ROOT, LoadGenerator, build_loadgen, say
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

KEY = "sk-soak-upstream"
# Share of the requests sent as each kind: (path, streamed, share).
MIX = {
    "chat": ("/v1/chat/completions", False, 0.5),
    "stream": ("/v1/chat/completions", True, 0.3),
    "anthropic": ("/v1/messages", False, 0.2),
}
FAULT_EVERY = 0.5
# Queued at every injection: FR gets two faults, DE one (so some requests fail at both).
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 429, "retry_after": 0},
    {"kind": "drop"},
    {"kind": "reset_mid_stream", "after_chunks": 2},
    {"kind": "in_stream_error", "after_chunks": 2},
    {"kind": "invalid_json", "after_chunks": 1},
    {"kind": "slow_first_byte", "delay": 0.3},
    {"kind": "slow_first_byte", "delay": 3.0},  # past the route's 2 s first-token deadline
]
# Every OUTAGE_EVERY-th injection is an outage instead: both providers answer 503 to the
# next OUTAGE_LENGTH requests, enough to open both circuits (CIRCUIT_FAILURES in a row) for
# CIRCUIT_COOLDOWN seconds, so that some requests fail everywhere (explained 502s) and the
# circuits' open, probe and close paths run all along.
OUTAGE_EVERY = 20
OUTAGE_LENGTH = 6
CIRCUIT_FAILURES = 5
CIRCUIT_COOLDOWN = 0.2
FLAT_PERCENT = 5.0
FDS_SLACK = 3
# Attempt outcomes that mean the provider failed (what an injected fault turns into).
UPSTREAM_FAILURES = frozenset(
    {"http_error", "timeout", "connect_error", "protocol_error", "stream_error"}
)


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    fds: int
    audit_bytes: int


@dataclass
class Result:
    requests: int
    sent: dict[str, int]
    seconds: float
    loadgen: str
    samples: list[Sample]
    audit_lines: int
    duplicate_ids: int
    statuses: dict[str, int]
    outcomes: dict[str, int]
    unexplained_5xx: int
    circuit_open_5xx: int
    faults_queued: dict[str, int]
    sidecar_exit: int | None
    errors_logged: int
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


# -- the run ------------------------------------------------------------------------------------


def sidecar_config(fr_url: str, de_url: str) -> SidecarConfig:
    def provider(url: str, country: str) -> Provider:
        return Provider(
            api="openai", endpoint=url + "/v1", location=country, jurisdiction=country,
            credential="upstream",
        )  # fmt: skip

    route = Route.model_validate(
        {
            "name": "soak",
            "targets": [
                Target(provider="fr", model="sim-small", priority=0),
                Target(provider="de", model="sim-small", priority=1),
            ],
            "retry": Retry(attempts=2, backoff_base=0.05, backoff_max=0.2),
            "timeouts": Timeouts(connect=2.0, first_token=2.0, stream_idle=5.0, total=30.0),
            "circuit_breaker": CircuitBreaker(
                consecutive_failures=CIRCUIT_FAILURES, cooldown=CIRCUIT_COOLDOWN
            ),
        }
    )
    return SidecarConfig(
        namespace="soak",
        providers={"fr": provider(fr_url, "FR"), "de": provider(de_url, "DE")},
        routes={"soak": route},
    )


def write_config(root: Path, config: SidecarConfig) -> Path:
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "credentials").mkdir(parents=True, exist_ok=True)
    (root / "config" / CONFIG_FILE).write_bytes(config.sealed().to_json())
    (root / "credentials" / "upstream").write_text(KEY + "\n")
    return root / "config"


def bodies(root: Path) -> dict[str, Path]:
    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    shapes: dict[str, dict[str, Any]] = {
        "chat": {"model": "soak", "messages": messages},
        "stream": {"model": "soak", "messages": messages, "stream": True},
        "anthropic": {"model": "soak", "max_tokens": 64, "messages": messages},
    }
    paths = {}
    for kind, body in shapes.items():
        paths[kind] = root / f"body-{kind}.json"
        paths[kind].write_text(json.dumps(body))
    return paths


class Sampler(threading.Thread):
    """RSS and open fds of the sidecar process every ``every`` seconds."""

    def __init__(self, pid: int, audit: Path, every: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pid, self.audit, self.every = pid, audit, every
        self.samples: list[Sample] = []
        self.began = time.monotonic()
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            size = self.audit.stat().st_size if self.audit.exists() else 0
        except OSError:
            return
        rss = group_memory(self.pid).leader_rss_mb
        self.samples.append(Sample(time.monotonic() - self.began, rss, fds, size))

    def run(self) -> None:
        # The first sample once the load generators are connected, then every ``every`` s.
        wait = min(1.0, self.every)
        while not self.stop.wait(wait):
            self.sample()
            wait = self.every


class Injector(threading.Thread):
    """Queues random faults at the simulators through their admin API."""

    def __init__(self, urls: dict[str, str], seed: int) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.urls = urls
        self.random = random.Random(seed)
        self.queued: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        rounds = 0
        while not self.stop.wait(FAULT_EVERY):
            rounds += 1
            outage = rounds % OUTAGE_EVERY == 0
            for name, url in self.urls.items():
                if outage:
                    faults = [{"kind": "status", "status": 503}] * OUTAGE_LENGTH
                else:
                    faults = self.random.choices(FAULTS, k=2 if name == "fr" else 1)
                body = json.dumps({"faults": faults, "repeat": False}).encode()
                status, _ = http_request(url + "/_sim/faults", body)
                if status == 200:
                    self.queued.update(_fault_name(f) for f in faults)


def _fault_name(fault: dict[str, Any]) -> str:
    extra = fault.get("status") or fault.get("delay") or ""
    return f"{fault['kind']} {extra}".strip()


def run_loadgens(
    procs: Procs,
    gen: LoadGenerator,
    url: str,
    body: dict[str, Path],
    requests: int,
    c: int,
    mixed: threading.Event,
) -> dict[str, dict[str, Any]]:
    """Run the load generators of :data:`MIX` at once; ``mixed`` is set when the first is done
    (from then on the load is no longer the full mix)."""
    started: dict[str, Proc] = {}
    for kind, (path, stream, share) in MIX.items():
        n = round(requests * share)
        argv = [
            *gen.argv, "-url", url + path, "-body", f"@{body[kind]}", "-n", str(n),
            "-c", str(c), "-warmup", "0", "-timeout", "60s",
        ]  # fmt: skip
        if stream:
            argv.append("-stream")
        started[kind] = procs.spawn(f"loadgen-{kind}", argv, stdout_pipe=True)
    while all(proc.alive for proc in started.values()):
        time.sleep(0.2)
    mixed.set()
    results = {}
    for kind, proc in started.items():
        assert proc.popen.stdout is not None
        out = proc.popen.stdout.read()
        if proc.popen.wait() != 0:
            raise RuntimeError(f"load generator {kind} failed:\n{proc.tail()}")
        results[kind] = json.loads(out)
    return results


def stop_sidecar(proc: Proc, timeout: float = 60) -> int | None:
    """SIGTERM, as Kubernetes does; the exit status (None if it had to be killed)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop()
        return None


# -- the verdict --------------------------------------------------------------------------------


def explained(record: dict[str, Any]) -> bool:
    """A 5xx caused by upstream failures: every attempt failed upstream or was skipped."""
    if record.get("outcome") != "all_targets_failed":
        return False
    attempts = record.get("attempts") or []
    return bool(attempts) and all(
        a["outcome"] in UPSTREAM_FAILURES or a["outcome"].startswith("skipped_") for a in attempts
    )


def read_audit(path: Path) -> tuple[int, int, Counter[str], Counter[str], int, int]:
    """(lines, duplicate ids, statuses, outcomes, unexplained 5xx, 5xx with every target
    skipped by an open circuit) of the audit file."""
    import orjson

    lines = duplicates = unexplained = circuits = 0
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    seen: set[str] = set()
    with path.open("rb") as f:
        for line in f:
            record = orjson.loads(line)
            if record.get("kind") == "checkpoint":  # the audit chain's own lines
                continue
            lines += 1
            rid = record["requestId"]
            if rid in seen:
                duplicates += 1
            seen.add(rid)
            statuses[str(record["status"])] += 1
            outcomes[record["outcome"]] += 1
            if record["status"] >= 500:
                if not explained(record):
                    unexplained += 1
                elif all(a["outcome"] == "skipped_circuit_open" for a in record["attempts"]):
                    circuits += 1
    return lines, duplicates, statuses, outcomes, unexplained, circuits


def tenth(samples: list[Sample], last: bool) -> list[Sample]:
    k = max(1, len(samples) // 10)
    return samples[-k:] if last else samples[:k]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def drift(samples: list[Sample], attribute: str) -> tuple[float, float]:
    """(first-10 % mean, last-10 % mean) of one sampled value."""
    first = mean([getattr(s, attribute) for s in tenth(samples, last=False)])
    last = mean([getattr(s, attribute) for s in tenth(samples, last=True)])
    return first, last


def floors(samples: list[Sample]) -> tuple[int, int]:
    """(first-10 % minimum, last-10 % minimum) of the open fds."""
    first = min(s.fds for s in tenth(samples, last=False))
    last = min(s.fds for s in tenth(samples, last=True))
    return first, last


def at_fraction(samples: list[Sample], fraction: float) -> Sample:
    end = samples[-1].seconds
    return min(samples, key=lambda s: abs(s.seconds - fraction * end))


def judge(result: Result) -> None:
    if len(result.samples) < 2:
        raise SystemExit(
            f"soak: {len(result.samples)} sample(s) of the mixed load: too short to tell "
            "whether memory and fds are flat (more --requests, or a smaller --sample-seconds)"
        )
    rss_first, rss_last = drift(result.samples, "rss_mb")
    fds_first, fds_last = floors(result.samples)
    sent = sum(result.sent.values())
    result.checks = {
        "rss flat": rss_last <= rss_first * (1 + FLAT_PERCENT / 100),
        "fds flat": fds_last <= max(fds_first * (1 + FLAT_PERCENT / 100), fds_first + FDS_SLACK),
        "one audit line per request": result.audit_lines == sent and result.duplicate_ids == 0,
        "no unexplained 5xx": result.unexplained_5xx == 0,
        "no internal error": result.outcomes.get("internal_error", 0) == 0,
        "no error logged": result.errors_logged == 0,
        "drained and exited 0": result.sidecar_exit == 0,
    }


# -- the report ---------------------------------------------------------------------------------


def markdown(result: Result, command: str) -> str:
    s = result.samples
    rss_first, rss_last = drift(s, "rss_mb")
    fds_first, fds_last = drift(s, "fds")
    floor_first, floor_last = floors(s)
    peak = max(x.fds for x in s)
    rows = "\n".join(
        f"| {int(p * 100)} % | {at_fraction(s, p).seconds:.0f} s | {at_fraction(s, p).rss_mb} MB "
        f"| {at_fraction(s, p).fds} |"
        for p in (0.1, 0.5, 1.0)
    )
    sent = sum(result.sent.values())
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.statuses.items()))
    by_count = sorted(result.outcomes.items(), key=lambda kv: -kv[1])
    outcomes = ", ".join(f"{k}: {v:,}" for k, v in by_count)
    faults = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.faults_queued.items()))
    checks = "\n".join(
        f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in result.checks.items()
    )
    mix = ", ".join(f"{k} {v:,}" for k, v in result.sent.items())
    return f"""# Soak

Generated by `{command}` ({result.loadgen}); see `devtools/aiguillage/devtools/bench/soak.py`
for what it does. {sent:,} requests ({mix}) in {result.seconds / 60:.1f} min
({sent / result.seconds:,.0f} requests/s), one sidecar process, faults injected at both
simulated providers.

Sampled every few seconds while the three load generators ran together:

| progress | time | sidecar RSS | open fds |
|---|---|---|---|
{rows}

Mean of the first vs the last 10 % of {len(s)} samples: RSS {rss_first:.1f} → {rss_last:.1f} MB,
fds {fds_first:.1f} → {fds_last:.1f} (fewest open: {floor_first} → {floor_last}; most at any
sample: {peak}).

Audit: {result.audit_lines:,} lines for {sent:,} requests, {result.duplicate_ids} duplicate ids.
Statuses: {statuses}. Outcomes: {outcomes}. Unexplained 5xx: {result.unexplained_5xx}
(every other 5xx is an `all_targets_failed` whose attempts all met an injected fault or were
skipped by a circuit opened by such faults; {result.circuit_open_5xx:,} had every target's
circuit open).
Faults queued: {faults}. Sidecar exit status after SIGTERM: {result.sidecar_exit}.

{checks}
"""


# -- entry point --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m aiguillage.devtools.bench.soak", description=__doc__
    )
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--concurrency", type=int, default=8, help="per load generator (3 run at once)")
    p.add_argument("--sample-seconds", type=float, default=5.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "soak")
    p.add_argument("--report", type=Path, help="also write the Markdown report here")
    p.add_argument("--seed", type=int, default=8)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    audit = out / "audit.jsonl"
    audit.unlink(missing_ok=True)
    gen = build_loadgen()
    with Procs(out / "logs") as procs:
        _, fr = start_upstream(procs, cpus=None, chunks=8, interval=0.0, name="sim-fr", key=KEY)
        _, de = start_upstream(procs, cpus=None, chunks=8, interval=0.0, name="sim-de", key=KEY)
        port = free_port()
        config_dir = write_config(out / "sidecar", sidecar_config(fr, de))
        sidecar = procs.spawn(
            "sidecar", [*sidecar_argv(config_dir, port), "--drain-seconds", "10"],
            env=sidecar_env(audit),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_ready(sidecar, lambda: http_request(url + "/readyz")[0] == 200, 30, "the sidecar")
        say(f"soak: {args.requests:,} requests through {url} with {gen.kind} load generators")
        sampler = Sampler(sidecar.pid, audit, args.sample_seconds)
        injector = Injector({"fr": fr, "de": de}, args.seed)
        sampler.start()
        injector.start()
        began = time.monotonic()
        try:
            loads = run_loadgens(
                procs, gen, url, bodies(out), args.requests, args.concurrency, sampler.stop
            )
        finally:
            injector.stop.set()
            injector.join(5)
        seconds = time.monotonic() - began
        sampler.join(10)  # it stopped with the first load generator: samples are of the mix
        exit_status = stop_sidecar(sidecar)
    lines, duplicates, statuses, outcomes, unexplained, circuits = read_audit(audit)
    log_text = (out / "logs" / "sidecar.log").read_text(errors="replace")
    result = Result(
        requests=args.requests,
        sent={kind: int(load["completed"]) for kind, load in loads.items()},
        seconds=seconds,
        loadgen=gen.note,
        samples=sampler.samples,
        audit_lines=lines,
        duplicate_ids=duplicates,
        statuses=dict(statuses),
        outcomes=dict(outcomes),
        unexplained_5xx=unexplained,
        circuit_open_5xx=circuits,
        faults_queued=dict(injector.queued),
        sidecar_exit=exit_status,
        errors_logged=log_text.count(" ERROR "),
    )
    judge(result)
    (out / "result.json").write_text(json.dumps(asdict(result), indent=2, default=str))
    command = "make soak" + (f" REQUESTS={args.requests}" if args.requests != 1_000_000 else "")
    report = markdown(result, command)
    if args.report:
        args.report.write_text(report)
    print(report)
    return 0 if result.passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StartError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        sys.exit(130)
