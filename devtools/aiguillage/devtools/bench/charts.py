"""Draw the benchmark's PNG charts from its results JSON.

Run by the benchmark with the tools venv's interpreter (matplotlib lives there, not in the
project's venv), so this file imports nothing from the project::

    <cache>/bench-venv/bin/python charts.py RESULTS.json OUT_DIR

Writes ``latency.png`` (non-streaming p50 and p99, streaming time to first token, by
concurrency, one line per system), ``throughput.png`` (requests/s by concurrency),
``memory.png`` (RSS idle, at peak under load and with many streams open, per system) and,
when feature costs were measured, ``features.png`` (CPU time per request each feature adds).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

COLORS = {
    "direct": "#7f7f7f",
    "passthrough": "#1f77b4",
    "aiguillage": "#d62728",
    "litellm": "#9467bd",
    "portkey": "#2ca02c",
}


def series(
    results: dict[str, Any], key: str, stream: bool, metric: str
) -> tuple[list[int], list[float]]:
    cells = sorted(
        (c for c in results["systems"][key]["cells"] if c["stream"] == stream),
        key=lambda c: int(c["concurrency"]),
    )
    xs, ys = [], []
    for cell in cells:
        if metric == "rps":
            value = cell["rps"]
        else:
            group, _, name = metric.partition(".")
            value = (cell.get(group) or {}).get(name)
        if value:
            xs.append(int(cell["concurrency"]))
            ys.append(float(value))
    return xs, ys


def draw(results: dict[str, Any], out: Path) -> list[Path]:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    ticker = importlib.import_module("matplotlib.ticker")
    concurrencies = [int(c) for c in results["plan"]["concurrencies"]]

    def style(ax: Any, title: str, ylabel: str) -> None:
        ax.set_title(title)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(concurrencies)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)

    out.mkdir(parents=True, exist_ok=True)
    systems = [
        k
        for k in ("direct", "passthrough", "aiguillage", "portkey", "litellm")
        if k in results["systems"]
    ]
    labels = {k: results["systems"][k]["label"] for k in systems}
    subtitle = (
        f"{results['mode']} run, {results['started_at'][:16].replace('T', ' ')} UTC, "
        f"{results['machine']['nproc']} cores (shared) — compare by ratio"
    )
    written = []

    panels = [
        ("non-streaming p50", False, "latency_ms.p50", "ms"),
        ("non-streaming p99", False, "latency_ms.p99", "ms"),
        ("streaming: time to first token p50", True, "ttft_ms.p50", "ms"),
        ("streaming: time to first token p99", True, "ttft_ms.p99", "ms"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, (title, stream, metric, unit) in zip(axes.flat, panels, strict=True):
        for key in systems:
            xs, ys = series(results, key, stream, metric)
            if xs:
                ax.plot(xs, ys, marker="o", color=COLORS[key], label=labels[key])
        style(ax, title, unit)
    axes.flat[0].legend(fontsize=8)
    written.append(
        save(plt, fig, "Latency percentiles by concurrency", subtitle, out / "latency.png")
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    panels2 = (
        ("non-streaming: requests/s", False, "requests/s"),
        ("streaming (64 chunks, 5 ms apart): streams/s", True, "streams/s"),
    )
    for ax, (title, stream, unit) in zip(axes, panels2, strict=True):
        for key in systems:
            xs, ys = series(results, key, stream, "rps")
            if xs:
                ax.plot(xs, ys, marker="o", color=COLORS[key], label=labels[key])
        style(ax, title, unit)
    axes[0].legend(fontsize=8)
    written.append(save(plt, fig, "Throughput by concurrency", subtitle, out / "throughput.png"))
    written.append(draw_memory(plt, results, systems, labels, subtitle, out))
    features = draw_features(plt, results, subtitle, out)
    if features is not None:
        written.append(features)
    return written


def draw_memory(
    plt: Any, results: dict[str, Any], systems: list[str], labels: dict[str, str],
    subtitle: str, out: Path,
) -> Path:  # fmt: skip
    """Grouped bars: idle RSS, peak RSS under the load matrix, peak with many streams open."""
    streams = (results.get("memory") or {}).get("streams") or {}
    shown = [k for k in systems if k != "direct"]
    groups = [
        ("idle", [results["systems"][k].get("idle_rss_mb") or 0 for k in shown]),
        ("peak under load", [results["systems"][k].get("peak_rss_mb") or 0 for k in shown]),
    ]
    if streams:
        n = next(iter(streams.values())).get("streams")
        groups.append(
            (f"peak with {n} streams open",
             [(streams.get(k) or {}).get("peak_rss_mb") or 0 for k in shown])
        )  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 4.5), constrained_layout=True)
    width = 0.8 / len(groups)
    for i, (name, values) in enumerate(groups):
        xs = [j + i * width for j in range(len(shown))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(len(shown))])
    ax.set_xticklabels([labels[k] for k in shown])
    ax.set_yscale("log")
    ticker = importlib.import_module("matplotlib.ticker")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("RSS (MB, all processes)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(plt, fig, "Memory", subtitle, out / "memory.png")


def draw_features(plt: Any, results: dict[str, Any], subtitle: str, out: Path) -> Path | None:
    """Horizontal bars: CPU time per request each measured feature adds, at each concurrency."""
    rows = [r for r in (results.get("derived") or {}).get("features") or []
            if not r.get("unavailable")]  # fmt: skip
    if not rows:
        return None
    concurrencies = (results.get("features") or {}).get("concurrencies") or []
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.6 * len(rows)), constrained_layout=True)
    height = 0.8 / max(1, len(concurrencies))
    for i, c in enumerate(concurrencies):
        values = [(r["by_concurrency"].get(str(c)) or {}).get("cpu_us_added") or 0 for r in rows]
        ax.barh([j + i * height for j in range(len(rows))], values, height, label=f"c={c}")
    ax.set_yticks([j + height * (len(concurrencies) - 1) / 2 for j in range(len(rows))])
    ax.set_yticklabels([r["label"] for r in rows], fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("sidecar CPU time added per request (µs), feature on minus off")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return save(plt, fig, "Cost of each feature", subtitle, out / "features.png")


def save(plt: Any, fig: Any, title: str, subtitle: str, path: Path) -> Path:
    fig.suptitle(f"{title}\n{subtitle}", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = json.loads(Path(argv[0]).read_text())
    for path in draw(results, Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
