"""The report as one self-contained HTML page.

Everything is inline (styles, SVG charts); a Content-Security-Policy forbids the page any
script and any resource from elsewhere, so it renders the same offline, attached to an
e-mail or archived, and text from the trail (escaped everywhere) can never run. The
verification result comes first, then anything processed outside its residency (in red),
the key figures, the charts and the tables. Tables longer than :data:`MAX_ROWS` are cut
here, never in their CSV files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from aiguillage.operator.audittrail.commands import describe, summary_lines
from aiguillage.operator.audittrail.report.charts import Chart, svg
from aiguillage.operator.audittrail.report.tables import Cell, Figures, Table, when
from aiguillage.operator.audittrail.verify import Verification

MAX_ROWS = 500
NUM = ' class="num"'
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1b1f23;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#57606a;margin-bottom:16px}
.box{border-radius:6px;padding:10px 14px;margin:12px 0;border:1px solid}
.holds{background:#e8f5e9;border-color:#66bb6a}.broken{background:#ffebee;border-color:#e53935}
.warn{background:#fff8e1;border-color:#ffb300}
.alarm{background:#ffebee;border:2px solid #c62828;color:#b71c1c}
.alarm h2{color:#b71c1c}
.figures{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.figure{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.figure b{display:block;font-size:20px}.figure.bad{border-color:#c62828;color:#b71c1c}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.violation td{background:#ffcdd2;color:#b71c1c;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg{border:1px solid #d0d7de;border-radius:6px;background:#fff;max-width:100%;height:auto}
svg .title{font:600 14px system-ui,sans-serif}svg .label,svg .value,svg .note{font:12px
system-ui,sans-serif}svg .axis{stroke:#8c959f}
.status-broken{color:#b71c1c;font-weight:600}.status-warning{color:#8a5a00}
.status-ok{color:#1b5e20}.note{color:#57606a}
"""


def page(
    verification: Verification,
    figures: Figures,
    charts: list[Chart],
    csv_files: list[str],
    png_files: list[str],
    generated: datetime | None = None,
) -> str:
    totals = figures.totals
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    period = f"{when(totals.first)} — {when(totals.last)} UTC"
    body = [
        "<h1>Aiguillage audit report</h1>",
        f'<div class="meta">Generated {stamp} from {len(verification.trail.files)} file(s): '
        f"{escape(', '.join(verification.trail.files))}<br>Period: {period}</div>",
        _verification(verification),
        _outside(figures),
        _figures(figures),
        "<h2>Charts</h2>",
        '<div class="charts">',
        *(svg(chart) for chart in charts),
        "</div>",
        *(_table(t) for t in figures.tables if t.key != "outside_residency"),
        "<h2>Files</h2><p>",
        "CSV: " + ", ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in csv_files),
        "<br>PNG: "
        + (", ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in png_files) or "none"),
        "</p>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Aiguillage audit report {escape(period)}</title><style>{STYLE}</style>"
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _verification(verification: Verification) -> str:
    first, result = summary_lines(verification)
    if verification.broken:
        kind = "broken"
    elif verification.warned or verification.trail.unchained:
        kind = "warn"
    else:
        kind = "holds"
    rows = []
    for chain in verification.chains:
        detail = chain.broken.message if chain.broken else "; ".join(chain.warnings)
        rows.append(
            f'<tr><td>{escape(chain.name)}</td><td class="status-{chain.status}">'
            f"{chain.status}</td><td>{escape(describe(chain))}</td><td>{escape(detail)}</td></tr>"
        )
    return (
        f'<div class="box {kind}" id="verification"><h2>Audit trail verification</h2>'
        f"<p><b>{escape(result)}</b><br>{escape(first)}</p>"
        "<table><tr><th>chain (namespace/pod/start)</th><th>status</th><th>extent</th>"
        f"<th>first broken link or warning</th></tr>{''.join(rows)}</table></div>"
    )


def _outside(figures: Figures) -> str:
    table = next(t for t in figures.tables if t.key == "outside_residency")
    if not table.rows:
        return (
            f'<div class="box holds" id="residency"><h2>{escape(table.title)}</h2>'
            f"<p>{escape(table.note)}</p></div>"
        )
    return (
        f'<div class="box alarm" id="residency"><h2>{escape(table.title)}: '
        f"{len(table.rows)} attempt(s)</h2><p>These attempts sent a request to a provider "
        "outside the residency rule the request was under. There must be none: report it."
        f"</p>{_rows(table)}</div>"
    )


def _figures(figures: Figures) -> str:
    t = figures.totals
    items = [
        ("requests", f"{t.requests:,}", False),
        ("served", f"{t.served:,}", False),
        ("refused by a rule", f"{t.refused:,}", False),
        ("not answered", f"{t.failed:,}", False),
        ("failovers", f"{t.failovers:,}", False),
        ("input tokens", f"{t.input_tokens:,}", False),
        ("output tokens", f"{t.output_tokens:,}", False),
        ("cost", f"{t.eur:,.4f} €", False),
        ("outside residency", f"{t.outside_residency:,}", t.outside_residency > 0),
    ]
    if t.unreadable_rules:
        items.append(("unreadable residency rules", f"{t.unreadable_rules:,}", True))
    cells = "".join(
        f'<div class="figure{" bad" if bad else ""}"><b>{value}</b>{escape(name)}</div>'
        for name, value, bad in items
    )
    return f'<h2>Key figures</h2><div class="figures" id="figures">{cells}</div>'


def _table(table: Table) -> str:
    return (
        f'<h2 id="{table.key}">{escape(table.title)}</h2>'
        + (f'<p class="note">{escape(table.note)}</p>' if table.note else "")
        + (_rows(table) if table.rows else "")
    )


def _rows(table: Table) -> str:
    shown = table.rows[:MAX_ROWS]
    numeric = [isinstance(c, int | Decimal) for c in shown[0]] if shown else []
    head = "".join(
        f"<th{NUM if i < len(numeric) and numeric[i] else ''}>{escape(c)}</th>"
        for i, c in enumerate(table.columns)
    )
    css = ' class="violation"' if table.alarm else ""
    body = "".join(f"<tr{css}>{''.join(_cell(c) for c in row)}</tr>" for row in shown)
    more = (
        f'<p class="note">{len(table.rows) - MAX_ROWS:,} more row(s) in {table.key}.csv</p>'
        if len(table.rows) > MAX_ROWS
        else ""
    )
    return f'<table data-table="{table.key}"><tr>{head}</tr>{body}</table>{more}'


def _cell(value: Cell) -> str:
    if isinstance(value, Decimal):
        return f'<td class="num">{value:,.6f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{escape(value)}</td>"
