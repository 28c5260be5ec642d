"""``aiguillage audit report FILE... --out DIR``: verify the trail, then write the report.

``DIR`` gets ``index.html`` (self-contained), one CSV file per table (``by_namespace.csv``,
``refusals.csv``, ``outside_residency.csv``, ``chains.csv``...) and, unless ``--no-png``, one
PNG per chart. The report is written even when a chain is broken (its result heads the
page). Exit code: that of ``aiguillage audit verify``, and 1 as well when any attempt was
processed outside its residency rule.
"""

from __future__ import annotations

import csv
import sys
from decimal import Decimal
from pathlib import Path

from aiguillage.operator.audittrail.commands import (
    BAD_INPUT,
    BROKEN,
    BadInput,
    describe,
    exit_code,
    load_and_verify,
    summary_lines,
)
from aiguillage.operator.audittrail.lines import BadTrail, records
from aiguillage.operator.audittrail.report import png
from aiguillage.operator.audittrail.report.charts import charts
from aiguillage.operator.audittrail.report.html import page
from aiguillage.operator.audittrail.report.tables import Cell, Table, build
from aiguillage.operator.audittrail.verify import Verification


def run_report(
    files: list[Path],
    out: Path,
    public_keys: list[Path],
    chains_only: bool,
    strict: bool,
    with_png: bool = True,
) -> int:
    if with_png and not png.available():
        print(
            f"error: PNG charts need matplotlib: {png.INSTALL} (or pass --no-png for the "
            "HTML page and CSV files alone)",
            file=sys.stderr,
        )
        return BAD_INPUT
    if out.exists() and not out.is_dir():
        print(f"error: --out {out}: exists and is not a directory", file=sys.stderr)
        return BAD_INPUT
    try:
        verification = load_and_verify(files, public_keys, chains_only, strict)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    try:
        written, outside = write(verification, out, with_png)
    except BadTrail as exc:  # a file that changed or vanished since it was verified
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except OSError as exc:
        print(f"error: --out {out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return BAD_INPUT
    for line in summary_lines(verification):
        print(line)
    print(written)
    return BROKEN if outside else exit_code(verification)


def write(verification: Verification, out: Path, with_png: bool) -> tuple[str, int]:
    """Write every file of the report into ``out``; returns what was written, in words, and
    how many attempts were processed outside their residency rule."""
    figures = build(records(Path(f) for f in verification.trail.files))
    chart_list = charts(figures)
    out.mkdir(parents=True, exist_ok=True)
    tables = [*figures.tables, _chains_table(verification)]
    csv_files = [_csv(table, out) for table in tables]
    png_files = [p.name for p in png.write(chart_list, out)] if with_png else []
    (out / "index.html").write_text(
        page(verification, figures, chart_list, csv_files, png_files), encoding="utf-8"
    )
    outside = figures.totals.outside_residency
    alarm = f"; {outside} attempt(s) OUTSIDE RESIDENCY" if outside else ""
    return (
        f"wrote {out / 'index.html'}, {len(csv_files)} CSV file(s) and {len(png_files)} PNG "
        f"chart(s): {figures.totals.requests} request(s){alarm}"
    ), outside


def _chains_table(verification: Verification) -> Table:
    return Table(
        "chains",
        "Audit chains",
        [
            "chain",
            "status",
            "first seq",
            "last seq",
            "records",
            "checkpoints",
            "sealed to",
            "stopped cleanly",
            "extent",
            "first broken link",
            "warnings",
        ],
        [
            [
                c.name,
                c.status,
                c.first_seq,
                c.last_seq,
                c.records,
                c.checkpoints,
                c.sealed_to,
                "yes" if c.final else "no",
                describe(c),
                c.broken.message if c.broken else "",
                "; ".join(c.warnings),
            ]
            for c in verification.chains
        ],
    )


def _csv(table: Table, out: Path) -> str:
    name = f"{table.key}.csv"
    with (out / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.columns)
        writer.writerows([_plain(c) for c in row] for row in table.rows)
    return name


def _plain(value: Cell) -> str | int:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # not a formula when opened in a spreadsheet
    return value
