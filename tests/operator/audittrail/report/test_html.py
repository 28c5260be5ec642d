"""``html.py``: one self-contained page; checked as text and in a real Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aiguillage.devtools import browser
from aiguillage.devtools.mixedrun import MixedRun
from aiguillage.operator.audittrail.keys import load as load_keys
from aiguillage.operator.audittrail.lines import read, records
from aiguillage.operator.audittrail.report import html
from aiguillage.operator.audittrail.report.charts import charts
from aiguillage.operator.audittrail.report.command import write
from aiguillage.operator.audittrail.report.tables import build
from aiguillage.operator.audittrail.verify import Verification, verify
from aiguillage.sidecar.audit import AttemptRecord
from aiguillage.sidecar.residency import EU
from tests.operator.audittrail._trails import Keys, chain_lines, request
from tests.operator.audittrail._trails import write as write_lines
from tests.operator.audittrail.report.conftest import trail_files

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def verified(tmp_path: Path, lines: list[bytes]) -> Verification:
    keys = Keys(tmp_path / "keys")
    keys.private_file("team-a")
    path = write_lines(tmp_path / "audit.log", lines)
    return verify(read([path]), load_keys([keys.public_dir]))


def page_of(verification: Verification) -> str:
    figures = build(records(Path(f) for f in verification.trail.files))
    return html.page(verification, figures, charts(figures), ["a.csv"], [])


def test_text_from_the_trail_is_escaped_and_nothing_can_run(tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys")
    lines = chain_lines(keys, [request("r1", route=HOSTILE, service_account=HOSTILE)])
    text = page_of(
        verify(read([write_lines(tmp_path / "a.log", lines)]), load_keys([keys.public_dir]))
    )
    assert "<script>" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp is not None
    assert csp.group(1) == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from elsewhere


def test_long_tables_are_cut_in_the_page_only(tmp_path: Path) -> None:
    records = [
        request(f"r{i}", outcome="no_compliant_target", status=503)
        for i in range(html.MAX_ROWS + 7)
    ]
    keys = Keys(tmp_path / "keys")
    v = verify(
        read([write_lines(tmp_path / "a.log", chain_lines(keys, records))]),
        load_keys([keys.public_dir]),
    )
    text = page_of(v)
    refusals = text.split('data-table="refusals"')[1].split("</table>")[0]
    assert refusals.count("<tr>") == html.MAX_ROWS + 1  # the header and MAX_ROWS rows
    assert "7 more row(s) in refusals.csv" in text


def test_a_broken_trail_heads_the_page(tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys")
    lines = chain_lines(keys, [request(f"r{i}") for i in range(4)])
    del lines[1]
    text = page_of(
        verify(read([write_lines(tmp_path / "a.log", lines)]), load_keys([keys.public_dir]))
    )
    head = text.split('id="residency"')[0]
    assert 'class="box broken" id="verification"' in head
    assert "BROKEN: 0 chain(s) intact, 0 with warnings, 1 broken" in head
    assert "deleted: seq 2 missing between seq 1" in head


# -- in Chromium -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return browser.chromium()
    except browser.NoBrowser as exc:
        pytest.fail(str(exc))


def test_the_console_check_sees_what_a_page_does_wrong(chromium: str, tmp_path: Path) -> None:
    """The check the report passes below is not blind: under the report's policy, a load
    from elsewhere and a script are both reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        f'<html><head><meta http-equiv="Content-Security-Policy" content="{html.CSP}"></head>'
        '<body><img src="http://127.0.0.1:9/x.png"><script>console.log(1)</script></body></html>'
    )
    console = browser.render(page).console
    assert any("violates the following Content Security Policy" in m for m in console)
    assert len(console) == 2


def test_a_mixed_run_report_renders_its_tables_and_charts_in_chromium(
    chromium: str, mixed_run: MixedRun, tmp_path: Path
) -> None:
    from aiguillage.operator.audittrail.commands import load_and_verify

    verification = load_and_verify(trail_files(mixed_run), [mixed_run.public_keys], False, False)
    out = tmp_path / "report"
    write(verification, out, with_png=False)
    rendered = browser.render(out / "index.html")
    assert rendered.console == []
    dom = rendered.dom
    charts_drawn = dom.split("<svg")[1:]
    assert len(charts_drawn) == 7
    assert all("<rect" in chart for chart in charts_drawn)  # each has bars
    for key in ("by_namespace", "by_workload", "by_route", "by_provider", "by_location",
                "by_jurisdiction", "refusals", "failovers", "outcomes"):  # fmt: skip
        assert f'data-table="{key}"' in dom, key
    assert "HOLDS: 4 chain(s) intact, 0 with warnings, 0 broken" in dom
    assert "None: every provider contacted complied" in dom
    # Every workload of the run is there, with its namespace.
    workloads = dom.split('data-table="by_workload"')[1].split("</table>")[0]
    for ns, account in (("support", "summarizer"), ("support", "triage"),
                        ("marketing", "copywriter"), ("finance", "ledger-bot")):  # fmt: skip
        assert f"<td>{ns}</td><td>{account}</td>" in workloads
    assert "no_compliant_target" in dom  # the residency refusals of the run
    # A picture of it, as the docs show: the bars' colours are really painted.
    png = tmp_path / "shot.png"
    assert browser.screenshot(out / "index.html", png) == []
    from PIL import Image

    with Image.open(png) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (0x15, 0x65, 0xC0) in colours  # bars
    assert (0x2E, 0x7D, 0x32) in colours  # served, in the timeline


def test_a_violation_is_shown_in_red_in_chromium(chromium: str, tmp_path: Path) -> None:
    rule: dict[str, list[str] | None] = {"locations": sorted(EU), "jurisdictions": None}
    keys = Keys(tmp_path / "keys")
    bad = request(
        "breach",
        residency=rule,
        attempts=[AttemptRecord("openai-us", "gpt", "US", "US", "ok", 9.0)],
    )
    path = write_lines(
        tmp_path / "a.log", chain_lines(keys, [request("fine", residency=rule), bad])
    )
    out = tmp_path / "report"
    write(verify(read([path]), load_keys([keys.public_dir])), out, with_png=False)
    rendered = browser.render(out / "index.html")
    assert rendered.console == []
    alarm = rendered.dom.split('class="box alarm" id="residency"')[1].split("</div>")[0]
    assert "Processed outside the route's residency: 1 attempt(s)" in alarm
    assert alarm.count('<tr class="violation">') == 1
    assert "<td>openai-us</td><td>US</td><td>US</td>" in alarm
    assert 'class="figure bad"><b>1</b>outside residency' in rendered.dom
