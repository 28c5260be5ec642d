"""``aiguillage audit report``: the files it writes, and its exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from aiguillage.cli import main
from aiguillage.devtools.mixedrun import MixedRun
from aiguillage.operator.audittrail.report import png
from tests.operator.audittrail._trails import Keys, chain_lines, request, write
from tests.operator.audittrail.report.conftest import trail_files

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_mixed_run_report(
    mixed_run: MixedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    logs = sorted((mixed_run.workdir / "logs").glob("*.log"))  # checkpoint copies, other logs
    code, stdout, _ = run(
        "audit", "report", *map(str, trail_files(mixed_run) + logs),
        "--public-key", str(mixed_run.public_keys), "--out", str(out), capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "HOLDS: 4 chain(s) intact, 0 with warnings, 0 broken" in stdout
    assert "13 CSV file(s) and 7 PNG chart(s): 400 request(s)" in stdout
    assert {p.name for p in out.glob("*.png")} == {
        "requests_over_time.png", "eur_by_namespace.png", "requests_by_jurisdiction.png",
        "requests_by_location.png", "requests_by_provider.png", "tokens_by_route.png",
        "requests_by_outcome.png",
    }  # fmt: skip
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in out.glob("*.png"))
    namespaces = {row["namespace"]: row for row in read_csv(out / "by_namespace.csv")}
    assert set(namespaces) == {"support", "marketing", "finance"}
    assert sum(int(r["requests"]) for r in namespaces.values()) == 400
    # The CSV files add up to what the sidecars were sent, per workload too.
    sent = sum(mixed_run.sent.values())
    assert sum(int(r["requests"]) for r in read_csv(out / "by_workload.csv")) == sent
    # Every request sent with a residency header no target meets is listed as refused: for
    # residency, or earlier by the route's limit.
    refusals = {r["request id"]: r for r in read_csv(out / "refusals.csv")}
    residency = mixed_run.sent_ids["residency_refusal"]
    outcomes = {refusals[rid]["outcome"] for rid in residency}
    assert outcomes <= {"no_compliant_target", "limit_refused"}
    assert sum(r["outcome"] == "no_compliant_target" for r in refusals.values()) == sum(
        refusals[rid]["outcome"] == "no_compliant_target" for rid in residency
    )
    limited = [r for r in refusals.values() if r["category"] == "refused: limit or budget"]
    assert {(r["namespace"], r["route"]) for r in limited} == {
        ("support", "sovereign-chat"), ("marketing", "copy"),
    }  # fmt: skip
    (finding,) = read_csv(out / "policy_findings.csv")
    assert finding["policy"] == "eu-only-audit"
    assert read_csv(out / "outside_residency.csv") == []
    assert len(read_csv(out / "failovers.csv")) > 0
    chains = read_csv(out / "chains.csv")
    assert [(c["status"], c["stopped cleanly"]) for c in chains] == [("ok", "yes")] * 4


def test_without_matplotlib_it_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(tmp_path / "keys")
    trail = write(tmp_path / "a.log", chain_lines(keys, [request("r")]))
    monkeypatch.setattr(png, "available", lambda: False)
    argv = ["audit", "report", str(trail), "--public-key", str(keys.public_dir)]
    code, out, err = run(*argv, "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2
    assert err == (
        "error: PNG charts need matplotlib: pip install 'aiguillage[report]' (or pass --no-png "
        "for the HTML page and CSV files alone)\n"
    )
    assert not (tmp_path / "r").exists()
    code, out, _ = run(*argv, "--out", str(tmp_path / "r"), "--no-png", capsys=capsys)
    assert code == 0
    assert "13 CSV file(s) and 0 PNG chart(s)" in out
    assert (tmp_path / "r" / "index.html").exists()


def test_a_broken_trail_is_reported_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(tmp_path / "keys")
    lines = chain_lines(keys, [request(f"r{i}") for i in range(5)])
    lines[2] = lines[2].replace(b'"inputTokens":10', b'"inputTokens":1')
    trail = write(tmp_path / "a.log", lines)
    out = tmp_path / "r"
    code, stdout, _ = run(
        "audit", "report", str(trail), "--public-key", str(keys.public_dir), "--out", str(out),
        "--no-png", capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert "BROKEN: 0 chain(s) intact" in stdout
    (chain,) = read_csv(out / "chains.csv")
    assert chain["status"] == "broken"
    assert chain["first broken link"].startswith("edited: seq 3")


def test_bad_output_places_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys(tmp_path / "keys")
    trail = write(tmp_path / "a.log", chain_lines(keys, [request("r")]))
    afile = tmp_path / "file"
    afile.write_text("x")
    base = ["audit", "report", str(trail), "--public-key", str(keys.public_dir), "--no-png"]
    code, _, err = run(*base, "--out", str(afile), capsys=capsys)
    assert (code, err) == (2, f"error: --out {afile}: exists and is not a directory\n")
    code, _, err = run(*base, "--out", str(afile / "sub"), capsys=capsys)
    assert code == 2
    assert err.startswith(f"error: --out {afile / 'sub'}: cannot write")


def test_spreadsheet_formulas_in_the_trail_stay_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(tmp_path / "keys")
    trail = write(tmp_path / "a.log", chain_lines(keys, [request("r", route="=HYPERLINK(1)")]))
    out = tmp_path / "r"
    run("audit", "report", str(trail), "--public-key", str(keys.public_dir), "--out", str(out),
        "--no-png", capsys=capsys)  # fmt: skip
    (row,) = read_csv(out / "by_route.csv")
    assert row["route"] == "'=HYPERLINK(1)"


def test_anything_processed_outside_its_residency_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiguillage.sidecar.audit import AttemptRecord

    rule: dict[str, list[str] | None] = {"locations": ["FR"], "jurisdictions": None}
    keys = Keys(tmp_path / "keys")
    breach = request(
        "breach", residency=rule, attempts=[AttemptRecord("us", "m", "US", "US", "ok", 1.0)]
    )
    trail = write(tmp_path / "a.log", chain_lines(keys, [request("ok", residency=rule), breach]))
    code, out, _ = run(
        "audit", "report", str(trail), "--public-key", str(keys.public_dir),
        "--out", str(tmp_path / "r"), "--no-png", capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert "HOLDS: 1 chain(s) intact" in out  # the trail is intact: what it says is the problem
    assert out.rstrip().endswith("2 request(s); 1 attempt(s) OUTSIDE RESIDENCY")
    (row,) = read_csv(tmp_path / "r" / "outside_residency.csv")
    assert (row["provider"], row["request id"]) == ("us", "breach")
