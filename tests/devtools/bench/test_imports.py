"""Idle memory import by import: the hook's records, ``-X importtime`` parsing, own and
cumulative costs, and the real sidecar measured once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiguillage.devtools.bench import imports

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      2000 |       5000 | aiohttp.connector
import time:       300 |        300 |     ssl
"""


def test_importtime_lines_are_read_by_module() -> None:
    times = imports.parse_importtime(IMPORTTIME + "INFO not an import line\n")
    assert times["aiohttp.connector"] == {"self_us": 2000, "cumulative_us": 5000}
    assert times["ssl"] == {"self_us": 300, "cumulative_us": 300}
    assert "imported" not in times


def test_modules_are_counted_in_their_package() -> None:
    assert imports.package_of("aiohttp.web_protocol") == "aiohttp"
    assert imports.package_of("aiguillage.sidecar.privacy.rules") == "aiguillage.sidecar.privacy"
    assert imports.package_of("aiguillage.sidecar") == "aiguillage.sidecar"
    assert imports.package_of("_ssl") == "_ssl"


def test_own_memory_leaves_out_what_a_module_imported() -> None:
    records = [
        {"name": "aiohttp.connector", "parent": None, "rss_before_kb": 1000,
         "rss_after_kb": 5000},
        {"name": "ssl", "parent": 0, "rss_before_kb": 1500, "rss_after_kb": 3500},
        {"name": "_ssl", "parent": 1, "rss_before_kb": 2000, "rss_after_kb": 3000},
        {"name": "half", "parent": None, "rss_before_kb": 5000},  # never finished
    ]  # fmt: skip
    summary = imports.summarize(
        records, imports.parse_importtime(IMPORTTIME), start_rss_kb=900, idle_rss_mb=6.0
    )
    own = {m["module"]: m for m in summary["top_own"]}
    assert own["aiohttp.connector"]["own_kb"] == 2000  # 4000 - 2000 (ssl)
    assert own["aiohttp.connector"]["cumulative_kb"] == 4000
    assert own["aiohttp.connector"]["own_us"] == 2000
    assert own["ssl"]["own_kb"] == 1000  # 2000 - 1000 (_ssl)
    assert own["_ssl"]["own_kb"] == 1000
    assert "half" not in own
    packages = {p["package"]: p for p in summary["packages"]}
    assert packages["aiohttp"]["own_kb"] == 2000
    assert summary["after_imports_rss_mb"] == round(5000 / 1024, 1)
    assert summary["modules_imported"] == 3
    assert summary["top_cumulative"][0]["module"] == "aiohttp.connector"
    text = imports.render_text(summary)
    assert "aiohttp.connector" in text
    assert "idle once ready 6.0 MB" in text


def test_the_hook_records_every_module_the_command_imports(tmp_path: Path) -> None:
    out = tmp_path / "records.json"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", str(imports.HOOK), str(out), "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "sidecar" in run.stdout  # the aiguillage command's own help
    data = json.loads(out.read_text())
    records = {r["name"]: r for r in data["records"]}
    cli = records["aiguillage.cli"]
    assert cli["parent"] is None
    assert cli["rss_after_kb"] >= cli["rss_before_kb"] >= data["start_rss_kb"] > 0
    assert cli["ns"] > 0
    # a module imported by another one points at it
    argparse_parent = records["argparse"]["parent"]
    assert argparse_parent is not None
    assert "aiguillage.cli" in imports.parse_importtime(run.stderr)


@pytest.mark.timeout(180)
def test_the_sidecar_is_measured_from_interpreter_start_to_idle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert imports.main(["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert 0 < summary["start_rss_mb"] < summary["after_imports_rss_mb"]
    assert summary["after_imports_rss_mb"] <= summary["idle_rss_mb"] + 1
    assert summary["modules_imported"] > 100
    packages = {p["package"] for p in summary["packages"]}
    assert {"httptools", "pydantic", "aiguillage.sidecar.server"} <= packages
    # the sidecar never loads the operator side, nor aiohttp (it has its own HTTP code)
    assert not packages & {"kopf", "kubernetes", "aiguillage.operator", "aiohttp"}
