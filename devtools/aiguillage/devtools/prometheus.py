"""A real Prometheus (the Debian package's binary) scraping sidecars, for the dashboard and
alert tests: started on a loopback port with its own configuration and storage in a temporary
directory, stopped by its process id.

Each scrape target carries the labels a Prometheus Operator PodMonitor adds (``namespace``,
``pod``, ``container``), so the dashboard's and alerts' queries run here as they would in a
cluster. :func:`promtool_check_rules` runs ``promtool check rules`` on a rules file.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from aiguillage.devtools import processes
from aiguillage.devtools.mixedrun import MixedRun
from aiguillage.devtools.spawning import free_ports
from aiguillage.devtools.waiting import answers, wait_for


class NoPrometheus(RuntimeError):
    """The prometheus or promtool binary is not installed."""


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise NoPrometheus(f"{name} is not installed: run `make system-deps` (Debian package)")
    return found


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    labels: dict[str, str]


@dataclass
class Prometheus:
    workdir: Path
    targets: list[Target]
    scrape_interval: str = "1s"
    url: str = ""
    _child: processes.Child | None = field(default=None, repr=False)

    def start(self) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "aiguillage-sidecars",
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {"targets": [t.address], "labels": t.labels} for t in self.targets
                    ],
                }
            ],
        }
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        (port,) = free_ports("127.0.0.1", 1)
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self._child = processes.Child(
            "prometheus", argv, dict(os.environ), self.workdir / "prometheus.log"
        ).start()
        wait_for(self._ready, timeout=60, what="prometheus to be ready")
        return self

    def _ready(self) -> bool:
        if self._child is not None and not self._child.alive:
            raise RuntimeError(f"prometheus exited: {self._child.output()[-2000:]}")
        return answers(f"{self.url}/-/ready", timeout=2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result (a vector's samples); raises on a bad query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{expr}: {exc.read().decode(errors='replace')}") from None
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def finite(self, expr: str) -> list[dict[str, Any]]:
        """The series of ``expr`` whose value is a number (not NaN): what a panel would draw."""
        return [s for s in self.query(expr) if math.isfinite(float(s["value"][1]))]

    def targets_up(self) -> int:
        return sum(1 for s in self.query("up == 1"))

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()


def scraping(run: MixedRun, workdir: Path) -> Prometheus:
    """A started Prometheus scraping every sidecar of ``run`` (with a PodMonitor's target
    labels), once all of them are up; raises NoPrometheus when it is not installed."""
    prometheus = Prometheus(
        workdir,
        [
            Target(
                sc.url.removeprefix("http://"),
                {"namespace": sc.namespace, "pod": sc.pod, "container": "aiguillage-sidecar"},
            )
            for sc in run.sidecars
        ],
    )
    prometheus.start()
    try:
        wait_for(
            lambda: prometheus.targets_up() == len(run.sidecars), timeout=60, what="targets up"
        )
    except BaseException:
        prometheus.stop()
        raise
    return prometheus


def promtool_check_rules(rules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# What ``python -m aiguillage.devtools.prometheus`` prints after the traffic: a few of the
# dashboard's queries, as a quick look at what the sidecars export.
SHOWN = {
    "requests per route and outcome (last 5 min)": (
        "sum by (namespace, route, outcome) (increase(aiguillage_requests_total[5m]))"
    ),
    "answered attempts per jurisdiction (last 5 min)": (
        'sum by (jurisdiction) (increase(aiguillage_attempts_total{outcome="ok"}[5m]))'
    ),
    "p95 duration per provider (s)": (
        "histogram_quantile(0.95, sum by (le, gen_ai_provider_name) "
        "(rate(gen_ai_client_operation_duration_seconds_bucket[5m])))"
    ),
    "budget used this month (as last seen by each sidecar)": (
        "max by (namespace, pod, policy, scope, subject) "
        "(aiguillage_budget_spend_eur / aiguillage_budget_limit_eur)"
    ),
    "open circuits": "max by (namespace, provider, model) (aiguillage_circuit_open) > 0",
}


def main(argv: list[str] | None = None) -> int:
    """A mixed run scraped by a local Prometheus: prints a few queries, then (unless
    ``--once``) keeps everything running until Ctrl-C, for trying the dashboard's queries."""
    import argparse
    import signal
    import tempfile
    import threading

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--once", action="store_true", help="stop after printing")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="aiguillage-prometheus-"))
    run = MixedRun(root / "run").start()
    try:
        prometheus = scraping(run, root / "prometheus")
    except BaseException:
        run.stop()
        raise
    try:
        sent = sum(run.traffic(args.requests, seconds=10).values())

        def scraped_all() -> bool:  # every request of the traffic is in Prometheus
            total = prometheus.query("sum(aiguillage_requests_total)")
            return bool(total) and float(total[0]["value"][1]) >= sent

        wait_for(scraped_all, timeout=60, what="the traffic to be scraped")
        print(f"prometheus at {prometheus.url} scraping {len(run.sidecars)} sidecars")
        for title, expr in SHOWN.items():
            print(f"{title}:  {expr}")
            for sample in sorted(prometheus.query(expr), key=lambda s: str(s["metric"])):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample["metric"].items()))
                print(f"  {{{labels}}} {float(sample['value'][1]):.4g}")
        if not args.once:
            print("Ctrl-C to stop")
            stop = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            stop.wait()
    finally:
        prometheus.stop()
        run.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
