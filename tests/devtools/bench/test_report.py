"""The Markdown report and the history line, on made-up results (no process is started)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiguillage.devtools.bench import derive, report

from ._results import make_results


def _markdown(results: dict[str, Any] | None = None, charts: dict[str, str] | None = None) -> str:
    results = results or make_results()
    results["derived"] = derive.derive(results)
    return report.markdown(results, charts or {}, "../bench/results.jsonl")


def test_markdown_has_every_system_side_by_side_and_the_charts() -> None:
    text = _markdown(charts={"Latency": "bench/latency.png"})
    for label in ("Direct", "Passthrough", "Aiguillage", "Portkey", "Litellm"):
        assert f"| {label} | 16 |" in text
    assert "![Latency](bench/latency.png)" in text
    assert "| 1 | `f (a.py)` | 50.0% | 60.0% |" in text
    assert "**missed**" in text
    assert "(../bench/results.jsonl)" in text
    assert "| req/s at c=16 | 1.25× | 5.00× | 50× |" in text


def test_a_failed_system_leaves_its_rows_out() -> None:
    results = make_results()
    results["systems"]["litellm"] = {**results["systems"]["litellm"], "cells": [], "error": "x"}
    text = _markdown(results)
    assert results["derived"]["ratios"]["aiguillage_vs_litellm_max_rps"] is None
    assert "| Litellm | 16 |" not in text


def test_each_peer_s_configuration_is_stated() -> None:
    text = _markdown()
    assert "## How each system is configured" in text
    assert "`@portkey-ai/gateway` 1.15.2, Node v20.20.2" in text
    assert "`--headless`: no log console" in text
    assert "`litellm[proxy]` 1.108.7" in text
    assert "1 worker (`--num_workers`)" in text
    assert "`@hono/node-server` to 1.14.1" in text


def test_sections_for_tail_capacity_memory_imports_and_features() -> None:
    text = _markdown()
    # tail latency: the sidecar's added p99 at c=16 is 1.5 times the pass-through's
    assert "| Aiguillage | 20.0 ms | +12.0 ms | 1.50× |" in text
    # stream capacity, with LiteLLM's failure said
    assert "| Aiguillage | 500 | 25.0 ms | +10.0 ms | 250 µs | 100 ok, 0 errors |" in text
    assert "| Direct | 800 | 15.0 ms | — | — | 100 ok, 0 errors |" in text
    assert "| Litellm | — | — | — | — | failed: load generator failed (2): boom |" in text
    # many streams at once
    assert "| Aiguillage | 1000 / 1000 | 1000 | 45.0 MB | 71.5 MB | 52.0 MB | — |" in text
    assert "failed: load generator failed (2): too many" in text
    assert "| 2 | 40,000 | 51.0 MB | 51.5 MB | 1,490 | 0 |" in text
    # imports
    assert "| `aiohttp` | 7.0 MB | 54 | 120.0 ms |" in text
    assert "| `aiohttp.connector` | 2.5 MB | 2.5 MB | 48.6 ms |" in text
    # features: numbers for residency, the reason for metrics
    assert "| Residency checks | +0.10 ms | +0.10 ms | 0.95× | +10 µs | +0.50 ms |" in text
    assert "| Metrics (vs off) | — |" in text
    assert "- Metrics (vs off): needs sidecar switch AIGUILLAGE_METRICS=off" in text


def test_the_optimisations_measured_by_hand_are_kept_in_the_report(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    (doc.parent / "bench").mkdir(parents=True)
    (doc.parent / report.OPTIMISATIONS).write_text("### gc.freeze\n\nCPU/request 212 -> 206 us\n")
    results = make_results()
    results["derived"] = derive.derive(results)
    report.write_outputs(results, doc, {}, tmp_path / "results.jsonl", "../results.jsonl")
    text = doc.read_text()
    assert "## Optimisations, measured" in text
    assert "### gc.freeze\n\nCPU/request 212 -> 206 us\n" in text
    assert "## Optimisations, measured" not in _markdown()  # no file, no section


def test_json_line_is_one_line_of_json() -> None:
    results = make_results()
    line = report.json_line(results)
    assert "\n" not in line
    assert json.loads(line)["systems"]["aiguillage"]["idle_rss_mb"] == 44


def test_the_data_protection_scan_of_each_prompt_size_is_reported() -> None:
    results = make_results()
    assert "## Data protection" not in _markdown(results)  # not measured: no section
    results["data_protection"] = {
        "rounds": 30,
        "load": 1.5,
        "rss_mb": [50.0, 54.3],
        "rows": [
            {"text": "personal data", "bytes": 1024, "median_s": 0.002, "fastest_s": 0.001,
             "findings": 30},
            {"text": "personal data", "bytes": 131072, "median_s": 0.3, "fastest_s": 0.256,
             "findings": 3840},
        ],
    }  # fmt: skip
    text = _markdown(results)
    assert "## Data protection, per prompt size" in text
    assert "| personal data | 128 KB | 3840 | 300.000 ms | 256.000 ms | 2000.0 µs |" in text
    assert "personal data 2.00×" in text  # 2 ms per KB at 128 KB against 1 ms at 1 KB
    assert "**+4.3 MB**" in text


def test_a_regenerated_report_keeps_the_node_propagation_section(tmp_path: Any) -> None:
    results = make_results()
    results["derived"] = derive.derive(results)
    doc = tmp_path / "benchmarks.md"
    report.write_outputs(results, doc, {}, tmp_path / "r.jsonl", "h")
    assert "Not measured in this run" in doc.read_text()
    begin, end = "<!-- node-propagation:begin -->", "<!-- node-propagation:end -->"
    text = doc.read_text()
    doc.write_text(
        text[: text.index(begin) + len(begin)] + "\np50 1.2 s\n" + text[text.index(end) :]
    )

    report.write_outputs(results, doc, {}, tmp_path / "r.jsonl", "h")

    assert f"{begin}\np50 1.2 s\n{end}" in doc.read_text()
    assert "Not measured in this run" not in doc.read_text()


def test_every_proxy_s_cpu_per_request_is_in_both_overhead_tables() -> None:
    text = _markdown()
    assert "| Req/s | CPU per request | Errors |" in text
    assert "| Streams/s | CPU per stream | Errors |" in text
    # 100 µs per unit of the made-up systems' scale; none for direct (no process of its own)
    row = "| Aiguillage | 16 | 100 | 10.0 ms | 20.0 ms | +6.00 ms | +12.0 ms | 2,000 | 250 µs |"
    assert row in text
    assert "| Passthrough | 16 | 100 | 4.00 ms | 8.00 ms | +2.00 ms | +4.00 ms | 670.0 ms | " \
        "+335.0 ms | 45.0 | 2,000 µs | 0 |" in text  # fmt: skip
    assert "| Direct | 16 | 100 | 4.00 ms | 8.00 ms | — | — | 4,000 | — | 0 |" in text


def test_the_rig_is_described_with_this_run_s_numbers() -> None:
    results = make_results()
    results["capacity"]["direct"]["rps"] = 1000.0  # 2× the fastest system's 500 streams/s
    text = _markdown(results)
    assert "| Simulated upstream | Go simulated upstream /cache/upstream/upstream-0123 |" in text
    assert "are Go programs on CPU 1" in text
    assert "direct at c=16 reached 2,400 req/s in this run" in text
    assert (
        "Non-streaming at c=16: direct 4,000 req/s, 2.00× the fastest system's (Aiguillage, "
        "2,000); streams without pauses: direct 1,000 streams/s, 2.00× the fastest system's "
        "(Aiguillage, 500). Both at least 2×: each system is limited by its own core" in text
    )


def test_a_rig_close_to_the_fastest_system_is_said_to_limit_it() -> None:
    results = make_results()
    results["systems"]["aiguillage"]["cells"][1]["rps"] = 3000.0
    text = _markdown(results)
    assert "direct 4,000 req/s, 1.33× the fastest system's (Aiguillage, 3,000)" in text
    assert "Less than 2× somewhere: there the load generator and the upstream may" in text


def test_with_the_python_fallback_the_report_says_the_upstream_caps_the_systems() -> None:
    results = make_results()
    results["upstream"] = {"chunks": 64, "chunk_interval_s": 0.005, "kind": "python",
                           "note": "Python OpenAI simulator"}  # fmt: skip
    text = _markdown(results)
    assert "The simulated upstream is the Python simulator (Python OpenAI simulator)" in text
    assert "no system can pass what direct to the upstream reached at c=16 (4,000 req/s)" in text
