"""The report's charts: their data (:class:`Chart`), drawn as inline SVG.

The same :class:`Chart` values are drawn as PNG by :mod:`.png`. SVG is written by hand
(no library, no script, no external font) so the page stays one self-contained file; every
label comes from the trail and is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from aiguillage.operator.audittrail.report import categories
from aiguillage.operator.audittrail.report.tables import Figures

MAX_BARS = 15
COLOURS = {
    categories.SERVED: "#2e7d32",
    categories.RESIDENCY: "#c62828",
    categories.LIMIT: "#ef6c00",
    categories.DATA_PROTECTION: "#6a1b9a",
    categories.CLIENT: "#757575",
    categories.PROVIDERS: "#8d6e63",
    categories.OTHER: "#455a64",
}
BAR = "#1565c0"


@dataclass(frozen=True)
class Bars:
    """Horizontal bars: one per label, largest first."""

    key: str  # file name stem
    title: str
    unit: str
    values: list[tuple[str, float]]


@dataclass(frozen=True)
class Timeline:
    """Vertical bars stacked by category, one per time bucket."""

    key: str
    title: str
    buckets: list[tuple[float, dict[str, int]]]
    bucket_seconds: int
    categories: list[str]


Chart = Bars | Timeline


def charts(figures: Figures) -> list[Chart]:
    s = figures.series
    used = {c for _, counts in figures.timeline for c in counts}
    return [
        Timeline(
            "requests_over_time",
            f"Requests per {_bucket_name(figures.bucket_seconds)} by outcome",
            figures.timeline,
            figures.bucket_seconds,
            [c for c in COLOURS if c in used],
        ),
        _bars("eur_by_namespace", "Cost per namespace", "EUR", s["eur_by_namespace"]),
        _bars(
            "requests_by_jurisdiction",
            "Requests per jurisdiction",
            "requests",
            s["requests_by_jurisdiction"],
        ),
        _bars(
            "requests_by_location",
            "Requests per processing location",
            "requests",
            s["requests_by_location"],
        ),
        _bars(
            "requests_by_provider",
            "Requests answered per provider",
            "requests",
            s["requests_by_provider"],
        ),
        _bars(
            "tokens_by_route", "Tokens per route (input + output)", "tokens", s["tokens_by_route"]
        ),
        _bars("requests_by_outcome", "Requests per outcome", "requests", s["requests_by_outcome"]),
    ]


def _bucket_name(seconds: int) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"  # pragma: no cover - buckets are whole seconds


def _bars(key: str, title: str, unit: str, values: dict[str, float]) -> Bars:
    ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > MAX_BARS:
        rest = sum(v for _, v in ordered[MAX_BARS - 1 :])
        ordered = [*ordered[: MAX_BARS - 1], (f"{len(ordered) - MAX_BARS + 1} others", rest)]
    return Bars(key, title, unit, ordered)


def number(value: float, unit: str) -> str:
    if unit == "EUR":
        return f"{value:,.4f} €" if value < 100 else f"{value:,.2f} €"
    return f"{value:,.0f}"


def svg(chart: Chart) -> str:
    return _bars_svg(chart) if isinstance(chart, Bars) else _timeline_svg(chart)


def _bars_svg(chart: Bars) -> str:
    width, label_w, row, top = 540, 170, 24, 34
    height = top + row * max(1, len(chart.values)) + 10
    top_value = max((v for _, v in chart.values), default=0) or 1
    room = width - label_w - 110
    parts = [_open(width, height, chart.title), _title(chart.title)]
    if not chart.values:
        parts.append(f'<text x="10" y="{top + 14}" class="note">no data</text>')
    for i, (label, value) in enumerate(chart.values):
        y = top + i * row
        length = max(1.0, room * value / top_value) if value else 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">'
            f"{escape(_cut(label, 26))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 7}" '
            f'fill="{BAR}"><title>{escape(label)}: {number(value, chart.unit)}</title></rect>'
            f'<text x="{label_w + length + 6:.1f}" y="{y + 15}" class="value">'
            f"{escape(number(value, chart.unit))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _timeline_svg(chart: Timeline) -> str:
    width, height, left, right, top, bottom = 1092, 240, 50, 10, 34, 62
    plot_w, plot_h = width - left - right, height - top - bottom
    buckets = chart.buckets
    parts = [_open(width, height, chart.title), _title(chart.title)]
    if not buckets:
        parts.append(f'<text x="10" y="{top + 14}" class="note">no data</text></svg>')
        return "".join(parts)
    peak = max(sum(counts.values()) for _, counts in buckets) or 1
    step = plot_w / len(buckets)
    bar_w = max(1.0, step * 0.8)
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" class="axis"/>'
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="value">{peak}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end" class="value">0</text>'
    )
    for i, (start, counts) in enumerate(buckets):
        x, y = left + i * step, float(base)
        for cat in chart.categories:
            n = counts.get(cat, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[cat]}"><title>{_stamp(start)} {escape(cat)}: {n}</title></rect>'
            )
    ticks = sorted({0, len(buckets) // 2, len(buckets) - 1})
    for i in ticks:
        x = left + i * step + bar_w / 2
        anchor = "start" if i == 0 else "end" if i == len(buckets) - 1 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{base + 14}" text-anchor="{anchor}" class="value">'
            f"{_stamp(buckets[i][0])}</text>"
        )
    x = float(left)
    for cat in chart.categories:
        parts.append(
            f'<rect x="{x:.1f}" y="{height - 22}" width="10" height="10" '
            f'fill="{COLOURS[cat]}"/><text x="{x + 14:.1f}" y="{height - 13}" class="value">'
            f"{escape(cat)}</text>"
        )
        x += 24 + 6.2 * len(cat)
    parts.append("</svg>")
    return "".join(parts)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%m-%d %H:%M:%S")


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
    )


def _title(title: str) -> str:
    return f'<text x="10" y="20" class="title">{escape(title)}</text>'


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
