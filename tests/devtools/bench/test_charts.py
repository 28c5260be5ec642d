"""The charts, drawn by the tools venv's matplotlib (when a benchmark run installed it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.bench import derive, run, tools

from ._results import make_results


def test_every_chart_is_drawn_and_linked(tmp_path: Path) -> None:
    python = tools.cache_dir() / "bench-venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("matplotlib's venv is not installed (make bench-quick installs it)")
    results = make_results()
    results["tools_python"] = str(python)
    results["derived"] = derive.derive(results)
    doc = tmp_path / "docs" / "benchmarks.md"
    charts = run.draw_charts(results, tmp_path / "docs" / "bench", doc, tmp_path)
    assert charts == {
        "Latency percentiles by concurrency": "bench/latency.png",
        "Throughput by concurrency": "bench/throughput.png",
        "Memory": "bench/memory.png",
        "Cost of each feature": "bench/features.png",
    }
    for path in charts.values():
        assert (doc.parent / path).read_bytes().startswith(b"\x89PNG")
    # no feature measured: no feature chart
    results["features"] = {}
    results["derived"] = derive.derive(results)
    charts = run.draw_charts(results, tmp_path / "other", doc, tmp_path)
    assert "Cost of each feature" not in charts
    assert "Memory" in charts
