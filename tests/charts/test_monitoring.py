"""The chart's Grafana dashboard, PrometheusRule and PodMonitor, against a real Prometheus.

A real Prometheus (Debian package) scrapes four real sidecar processes (a mixed run: three
namespaces, simulated providers, failovers, residency refusals, a budget and a rate limit
refusing, an Audit-mode policy finding, a shared store that cannot be reached, a rejected
config, an open circuit, an unusable provider) with the target labels a PodMonitor adds.
Every query of every dashboard panel (Grafana variables substituted) must return data that
a panel would draw, every template variable must have values, and every alert expression,
rendered with its thresholds lowered, must return the series that would fire.
``promtool check rules`` passes on the rules as rendered by default.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from aiguillage.devtools.mixedrun import MixedRun
from aiguillage.devtools.prometheus import (
    NoPrometheus,
    Prometheus,
    promtool_check_rules,
    scraping,
)
from aiguillage.devtools.waiting import wait_for
from tests.charts.test_chart import CHART, helm

pytestmark = pytest.mark.e2e  # helm comes with the control plane's binaries
DASHBOARD = CHART / "files" / "grafana" / "aiguillage.json"
# Grafana's variables as a panel would have them with "All" selected and a 1 h range.
GRAFANA = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    '"$namespace"': '".*"',
    '"$route"': '".*"',
}
LOWERED = (
    "monitoring.prometheusRule.budgetWarningRatio=0",
    "monitoring.prometheusRule.budgetExhaustedRatio=0",
    "monitoring.prometheusRule.failoverRatio=0",
)


def rendered(*sets: str) -> list[dict[str, Any]]:
    """The chart with monitoring on; ``sets`` are --set-json values (numbers stay numbers)."""
    args = [a for s in ("monitoring.grafanaDashboard.enabled=true",
                        "monitoring.prometheusRule.enabled=true",
                        "monitoring.sidecarPodMonitor.enabled=true", *sets)
            for a in ("--set-json", s)]  # fmt: skip
    result = helm(
        "template", "aig", str(CHART), "-n", "aiguillage-system",
        "--api-versions", "monitoring.coreos.com/v1", *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def alert_exprs(*sets: str) -> dict[str, str]:
    rule = of_kind(rendered(*sets), "PrometheusRule")
    return {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}


def grafana(expr: str) -> str:
    for variable, value in GRAFANA.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable is left in {expr}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        (f"{p['title']} [{t['refId']}]", t["expr"]) for p in panels for t in p.get("targets", [])
    ]


ALERT_NAMES = re.findall(
    r"- alert: (\w+)", (CHART / "templates" / "prometheusrule.yaml").read_text()
)


# -- the chart ---------------------------------------------------------------------------------


def test_the_dashboard_config_map_carries_the_file_and_the_grafana_label() -> None:
    cm = next(d for d in rendered() if d["metadata"]["name"] == "aig-aiguillage-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["aiguillage.json"]) == json.loads(DASHBOARD.read_text())


def test_the_pod_monitor_scrapes_injected_sidecars_on_their_health_port() -> None:
    monitor = of_kind(rendered(), "PodMonitor")
    assert monitor["spec"]["selector"] == {"matchLabels": {"aiguillage.dev/injected": "true"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("aig-health", "/metrics")


def test_monitoring_is_off_by_default_and_needs_the_operator_crds() -> None:
    result = helm("template", "aig", str(CHART))
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    assert not kinds & {"PrometheusRule", "PodMonitor"}
    result = helm("template", "aig", str(CHART), "--set", "monitoring.prometheusRule.enabled=true")
    assert result.returncode != 0
    assert "needs the Prometheus Operator's CRDs (monitoring.coreos.com/v1)" in result.stderr


@pytest.mark.parametrize("sets", [(), LOWERED], ids=["default", "lowered"])
def test_promtool_accepts_the_rendered_rules(tmp_path: Path, sets: tuple[str, ...]) -> None:
    rule = of_kind(rendered(*sets), "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    try:
        result = promtool_check_rules(path)
    except NoPrometheus as exc:
        pytest.fail(str(exc))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in result.stdout


def test_thresholds_come_from_the_values() -> None:
    exprs = alert_exprs(
        "monitoring.prometheusRule.budgetWarningRatio=0.9",
        "monitoring.prometheusRule.failoverRatio=0.05",
    )
    assert exprs["AiguillageBudgetAlmostSpent"].endswith(">= 0.9")
    assert exprs["AiguillageFailoverSpike"].endswith("> 0.05")


# -- against a real Prometheus scraping real sidecars ----------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MixedRun, Prometheus]]:
    root = tmp_path_factory.mktemp("monitoring")
    run = MixedRun(root / "run", seed=5).start()
    try:
        prometheus = scraping(run, root / "prometheus")
    except NoPrometheus as exc:
        run.stop()
        pytest.fail(str(exc))
    try:
        run.traffic(300, seconds=8)
        # A config one sidecar refuses (it keeps serving its last good one) ...
        run.sidecars[0].config_file.write_text("{not json")
        # ... and a provider that keeps failing: finance's only target opens its circuit.
        run.simulators["ionos-de"].set_faults([{"kind": "status", "status": 503}], repeat=True)
        run.ask("ledger-bot-59cd-k3", "ledger", 4)
        wait_for(
            lambda: (
                prometheus.query('aiguillage_config_reloads_total{result="invalid"}')
                and prometheus.query("aiguillage_circuit_open == 1")
            ),
            timeout=60,
            what="the rejected config and the open circuit to be scraped",
        )
        yield run, prometheus
    finally:
        prometheus.stop()
        run.stop()


@pytest.mark.parametrize(("panel", "expr"), panel_queries(), ids=[p for p, _ in panel_queries()])
def test_every_dashboard_query_returns_data(
    world: tuple[MixedRun, Prometheus], panel: str, expr: str
) -> None:
    _, prometheus = world
    query = grafana(expr)
    series = wait_for(lambda: prometheus.finite(query), timeout=60, what=f"data for {query}")
    assert series


def test_every_dashboard_variable_has_values(world: tuple[MixedRun, Prometheus]) -> None:
    _, prometheus = world
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    found = {}
    for variable in variables:
        if variable["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]["query"])
        assert m, variable["query"]
        match, label = grafana(m.group(1)), m.group(2)
        url = f"{prometheus.url}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": match}
        )
        with urllib.request.urlopen(url, timeout=30) as resp:
            found[variable["name"]] = orjson.loads(resp.read())["data"]
    assert found["namespace"] == ["finance", "marketing", "support"]
    assert set(found["route"]) == {"summarizer", "sovereign-chat", "copy", "eu-copy", "ledger"}


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_fires_with_its_thresholds_lowered(
    world: tuple[MixedRun, Prometheus], alert: str
) -> None:
    _, prometheus = world
    expr = alert_exprs(*LOWERED)[alert]
    series = wait_for(lambda: prometheus.query(expr), timeout=60, what=f"{alert} to fire")
    assert all({"namespace"} <= set(s["metric"]) for s in series), series


def test_the_alerts_name_what_happened(world: tuple[MixedRun, Prometheus]) -> None:
    """With the default thresholds, the conditions of this run fire these alerts, on the
    objects concerned."""
    _, prometheus = world
    exprs = alert_exprs()
    circuit = prometheus.query(exprs["AiguillageCircuitOpen"])
    assert {(s["metric"]["namespace"], s["metric"]["provider"]) for s in circuit} >= {
        ("finance", "ionos-de")
    }
    rejected = prometheus.query(exprs["AiguillageConfigRejected"])
    assert [(s["metric"]["namespace"], s["metric"]["pod"]) for s in rejected] == [
        ("support", "summarizer-7d9f-x2")
    ]
    refused = prometheus.query(exprs["AiguillageResidencyRefusals"])
    assert {s["metric"]["namespace"] for s in refused} == {"support", "marketing", "finance"}
    unreachable = prometheus.query(exprs["AiguillageSharedStoreErrors"])
    assert [s["metric"]["namespace"] for s in unreachable] == ["finance"]
