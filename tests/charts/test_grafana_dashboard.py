"""The Grafana dashboard file (``files/grafana/aiguillage.json``) is a well-formed dashboard:
its queries are checked against a real Prometheus in ``test_monitoring.py``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CHART = Path(__file__).resolve().parents[2] / "charts" / "aiguillage"
DASHBOARD: dict[str, Any] = json.loads(
    (CHART / "files" / "grafana" / "aiguillage.json").read_text()
)
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


def panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in DASHBOARD["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] < g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_every_query_uses_the_datasource_variable_and_known_variables() -> None:
    defined = {v["name"] for v in DASHBOARD["templating"]["list"]} | GRAFANA_BUILTINS
    for p in panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
            assert used <= defined, (p["title"], used - defined)


def test_it_shows_what_the_issue_asks_for() -> None:
    """Requests, errors, failovers, latency percentiles, tokens, spend against budget,
    refusals and residency per jurisdiction each have a panel."""
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for needed in (
        "aiguillage_requests_total",
        'outcome!~"ok|client_closed|answered_by_sidecar"',
        "aiguillage_failovers_total",
        "histogram_quantile(0.99, sum by (le) (rate(gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage_sum",
        'aiguillage_budget_spend_eur{namespace=~"$namespace"} / aiguillage_budget_limit_eur',
        "aiguillage_limit_refusals_total",
        "sum by (jurisdiction) (increase(aiguillage_attempts_total",
        "aiguillage_circuit_open",
    ):
        assert needed in exprs, needed


def test_labels_stay_bounded() -> None:
    """No query groups by anything that grows with traffic (request ids, users, prompts)."""
    for p in panels():
        for t in p["targets"]:
            for group in re.findall(r"by \(([^)]*)\)", t["expr"]):
                labels = {label.strip() for label in group.split(",")}
                assert not labels & {"request_id", "requestId", "user", "prompt"}, p["title"]
