"""Prometheus text rendering (``metrics.py``)."""

from __future__ import annotations

from aiguillage.sidecar.metrics import Metrics, new_metrics


def test_counters_render_with_help_type_and_labels() -> None:
    m = new_metrics()
    m.inc("aiguillage_requests_total", (("route", "chat"), ("outcome", "ok")))
    m.inc("aiguillage_requests_total", (("route", "chat"), ("outcome", "ok")))
    m.inc("aiguillage_cost_eur_total", (("route", "chat"),), 12)

    lines = m.render().splitlines()

    assert "# HELP aiguillage_requests_total Client requests by route and outcome." in lines
    assert "# TYPE aiguillage_requests_total counter" in lines
    assert 'aiguillage_requests_total{route="chat",outcome="ok"} 2' in lines
    assert 'aiguillage_cost_eur_total{route="chat"} 12' in lines


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.inc("c", (("route", 'we"ird\\name'),))
    assert 'c{route="we\\"ird\\\\name"} 1' in m.render().splitlines()


def test_histogram_buckets_are_cumulative() -> None:
    m = Metrics()
    labels = (("op", "chat"),)
    for value in (0.003, 0.2, 0.25, 7.0, 999.0):  # a value on a bound is in that bucket
        m.observe("d", labels, value)

    lines = m.render().splitlines()

    assert "# TYPE d histogram" in lines
    assert 'd_bucket{op="chat",le="0.005"} 1' in lines
    assert 'd_bucket{op="chat",le="0.1"} 1' in lines
    assert 'd_bucket{op="chat",le="0.25"} 3' in lines
    assert 'd_bucket{op="chat",le="10"} 4' in lines
    assert 'd_bucket{op="chat",le="300"} 4' in lines
    assert 'd_bucket{op="chat",le="+Inf"} 5' in lines
    assert 'd_count{op="chat"} 5' in lines
    assert 'd_sum{op="chat"} 1006.45' in lines


def test_empty_registry_renders_a_newline() -> None:
    assert Metrics().render() == "\n"
