"""The operator's Prometheus metrics (``operator/metrics.py``), read from the running parts."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from aiguillage.operator.metrics import render


def series(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_a_standby_says_it_is_not_leading_and_counts_what_it_admitted() -> None:
    reconciler = SimpleNamespace(renders=0, written={}, routes={1: 1, 2: 2}, providers={1: 1})
    text = render(
        {
            "reconciler": reconciler,
            "elector": SimpleNamespace(leading=False),
            "propagator": SimpleNamespace(patched=0),
            "injections": Counter(injected=3, refused=1),
        }
    )

    assert series(text) == {
        "aiguillage_operator_leader": "0",
        "aiguillage_operator_renders_total": "0",
        "aiguillage_operator_namespaces": "0",
        "aiguillage_operator_routes": "2",
        "aiguillage_operator_providers": "1",
        'aiguillage_operator_injections_total{result="injected"}': "3",
        'aiguillage_operator_injections_total{result="skipped"}': "0",
        'aiguillage_operator_injections_total{result="refused"}': "1",
        "aiguillage_operator_pods_patched_total": "0",
    }


def test_the_leader_reports_its_work_and_nothing_breaks_before_start_up() -> None:
    reconciler = SimpleNamespace(renders=7, written={"a": "h", "b": "h"}, routes={}, providers={})
    leading = render(
        {
            "reconciler": reconciler,
            "elector": SimpleNamespace(leading=True),
            "propagator": SimpleNamespace(patched=12),
        }
    )
    assert series(leading)["aiguillage_operator_leader"] == "1"
    assert series(leading)["aiguillage_operator_namespaces"] == "2"
    assert series(leading)["aiguillage_operator_pods_patched_total"] == "12"
    assert series(render({}))["aiguillage_operator_leader"] == "0"
