"""The report's charts as PNG files, with matplotlib (the optional ``report`` extra).

matplotlib is imported only here, and only when PNGs are asked for; without it the command
says how to install it (:data:`INSTALL`) instead of failing half-way.
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiguillage.operator.audittrail.report.charts import COLOURS, Bars, Chart, Timeline, number

INSTALL = "pip install 'aiguillage[report]'"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write(charts: list[Chart], folder: Path) -> list[Path]:
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")  # no display
    plt: Any = importlib.import_module("matplotlib.pyplot")
    written = []
    for chart in charts:
        figure = _bars(plt, chart) if isinstance(chart, Bars) else _timeline(plt, chart)
        path = folder / f"{chart.key}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure)
        written.append(path)
    return written


def _bars(plt: Any, chart: Bars) -> Any:
    values = list(reversed(chart.values))  # matplotlib draws the first bar at the bottom
    figure, axes = plt.subplots(figsize=(7.2, 0.9 + 0.32 * max(1, len(values))))
    axes.barh([label for label, _ in values], [v for _, v in values], color="#1565c0")
    for index, (_, value) in enumerate(values):
        axes.text(value, index, " " + number(value, chart.unit), va="center", fontsize=8)
    axes.set_title(chart.title, loc="left", fontsize=11)
    axes.set_xlabel(chart.unit)
    axes.spines[["top", "right"]].set_visible(False)
    if not values:
        axes.text(0.5, 0.5, "no data", ha="center", transform=axes.transAxes)
    return figure


def _timeline(plt: Any, chart: Timeline) -> Any:
    figure, axes = plt.subplots(figsize=(7.2, 2.8))
    starts = [datetime.fromtimestamp(start, UTC) for start, _ in chart.buckets]
    width = chart.bucket_seconds / 86400 * 0.8  # in days, matplotlib's date unit
    bottom = [0] * len(starts)
    for cat in chart.categories:
        heights = [counts.get(cat, 0) for _, counts in chart.buckets]
        axes.bar(
            starts, heights, width=width, bottom=bottom, color=COLOURS[cat], label=cat, align="edge"
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title(chart.title, loc="left", fontsize=11)
    axes.set_ylabel("requests")
    axes.spines[["top", "right"]].set_visible(False)
    if chart.categories:
        axes.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    else:
        axes.text(0.5, 0.5, "no data", ha="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    return figure
