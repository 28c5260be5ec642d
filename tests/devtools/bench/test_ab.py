"""The A/B report: medians and spreads per side, ratios after/before, both profiles."""

from __future__ import annotations

import argparse
from pathlib import Path

from aiguillage.devtools.bench import ab
from aiguillage.devtools.bench.tools import ROOT


def _side(name: str, cpu: list[float], rps: list[float]) -> ab.Side:
    side = ab.Side(name, "HEAD~1" if name == "before" else "working tree", "a" * 40, ROOT)
    side.runs = [
        {"rps": r, "p50_ms": 1000 / r, "p99_ms": 3000 / r, "cpu_us": c, "errors": 0}
        for c, r in zip(cpu, rps, strict=True)
    ]
    return side


def test_medians_and_spreads_per_side() -> None:
    summary = ab.summarize(_side("before", [300, 320, 310], [1000, 900, 950]).runs)
    assert summary["cpu_us"] == {"median": 310.0, "min": 300.0, "max": 320.0}
    assert summary["rps"]["median"] == 950.0


def test_report_gives_ratios_and_both_profiles() -> None:
    before = _side("before", [300, 320, 310], [1000, 900, 950])
    after = _side("after", [240, 250, 248], [1200, 1100, 1150])
    before.profile = {
        "mode": "native", "samples": 900, "idle_pct": 12.5, "load": {"rps": 800.0},
        "top": [{"function": "write (libc.so.6)", "own_pct": 30.0, "total_pct": 30.0}],
    }  # fmt: skip
    after.profile = {"error": "py-spy unavailable: no network"}
    args = argparse.Namespace(rounds=3, requests=4000, warmup=200, concurrency=16, stream=False)
    text = ab.report(before, after, args, ("1.0 1.0 1.0", "2.0 2.0 2.0"))
    assert "3 interleaved rounds of 4000 non-streaming requests at c=16" in text
    assert "| CPU per request (µs) | 310.00 (300.00–320.00) | 248.00 (240.00–250.00) | 0.80× |" in (
        text
    )
    assert "| req/s | 950.00 (900.00–1,000.00) | 1,150.00 (1,100.00–1,200.00) | 1.21× |" in text
    assert "| 1 | `write (libc.so.6)` | 30.0% | 30.0% |" in text
    assert "another 12 % of samples found it waiting" in text
    assert "Profile of after (`working tree`): py-spy unavailable: no network" in text


def test_a_revision_runs_from_its_own_source_roots() -> None:
    assert _side("after", [1], [1]).pythonpath == ""  # the working tree: the venv's install
    other = ab.Side("before", "HEAD~1", "b" * 40, Path("/tmp/tree"))
    assert other.pythonpath.split(":") == [
        "/tmp/tree/sidecar", "/tmp/tree/operator", "/tmp/tree/devtools",
    ]  # fmt: skip
