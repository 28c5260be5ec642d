"""``charts.py`` and ``png.py``: chart data, SVG and PNG drawing."""

from __future__ import annotations

from pathlib import Path

from aiguillage.operator.audittrail.report import png
from aiguillage.operator.audittrail.report.charts import MAX_BARS, Bars, Timeline, _bars, svg


def test_many_bars_keep_the_largest_and_sum_the_rest() -> None:
    chart = _bars("k", "t", "requests", {f"p{i:02}": float(i) for i in range(40)})
    assert len(chart.values) == MAX_BARS
    assert chart.values[0] == ("p39", 39.0)
    assert chart.values[-1] == ("26 others", float(sum(range(26))))


def test_labels_are_escaped_and_empty_charts_say_so() -> None:
    drawn = svg(Bars("k", "Cost <b>", "EUR", [("<script>", 1.0)]))
    assert "<script>" not in drawn
    assert "&lt;script&gt;" in drawn
    assert "Cost &lt;b&gt;" in drawn
    assert "no data" in svg(Bars("k", "t", "EUR", []))
    assert "no data" in svg(Timeline("k", "t", [], 60, []))


def test_png_files_are_written(tmp_path: Path) -> None:
    charts = [
        Bars("bars", "Bars", "EUR", [("a", 1.5), ("b", 0.25)]),
        Timeline("time", "Time", [(0.0, {"served": 3}), (60.0, {})], 60, ["served"]),
        Bars("empty", "Empty", "requests", []),
    ]
    written = png.write(charts, tmp_path)
    assert [p.name for p in written] == ["bars.png", "time.png", "empty.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 1000 for p in written)
