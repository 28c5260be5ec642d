"""The benchmark's arithmetic and report, on made-up results (no processes started)."""

from __future__ import annotations

import json
from typing import Any

from aiguillage.devtools.bench import report
from aiguillage.devtools.bench.proxy import QUICK
from aiguillage.devtools.bench.run import plan_dict


def _cell(
    c: int, stream: bool, p50: float, p99: float, rps: float, ttft: float = 0.0
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "concurrency": c,
        "stream": stream,
        "completed": 100,
        "errors": 0,
        "rps": rps,
        "latency_ms": {"p50": p50, "p90": p50, "p99": p99, "max": p99, "mean": p50},
    }
    if stream:
        item["ttft_ms"] = {"p50": ttft, "p90": ttft, "p99": ttft * 2, "max": ttft * 2, "mean": ttft}
    return item


def _system(key: str, scale: float, rps16: float, idle: float | None = None) -> dict[str, Any]:
    return {
        "key": key,
        "label": key.title(),
        "cells": [
            _cell(1, False, 0.5 * scale, 1.0 * scale, 1000 / scale),
            _cell(16, False, 4.0 * scale, 8.0 * scale, rps16),
            _cell(1, True, 330 * scale, 340 * scale, 3, ttft=1.0 * scale),
            _cell(16, True, 335 * scale, 350 * scale, 45, ttft=2.0 * scale),
        ],
        "start_to_ready_s": 0.5,
        "idle_rss_mb": idle,
        "idle_pss_mb": idle,
        "processes": 1,
        "peak_rss_mb": idle,
        "after_rss_mb": idle,
        "notes": [],
        "error": None,
    }


def make_results() -> dict[str, Any]:
    return {
        "mode": "quick",
        "command": "make bench-quick",
        "started_at": "2026-11-26T00:00:00+00:00",
        "duration_s": 100.0,
        "git": {"commit": "0" * 40, "dirty": False},
        "machine": {
            "nproc": 2,
            "cpu_model": "CPU",
            "memory_gb": 24.0,
            "kernel": "6",
            "python": "3.11",
            "go": "go1.26",
            "aiohttp": "3.14",
            "loadavg_start": "0 0 0",
            "loadavg_end": "0 0 0",
        },
        "plan": json.loads(json.dumps(plan_dict(QUICK))),
        "layout": {"pinned": True, "proxy_cpus": "0", "upstream_cpus": "1", "load_cpus": "1"},
        "upstream": {"chunks": 64, "chunk_interval_s": 0.005},
        "loadgen": {"kind": "go", "note": "Go"},
        "litellm": {"version": "1.108.7", "workers": 2},
        "commands": ["python -m x"],
        "systems": {
            "direct": _system("direct", 1.0, 4000),
            "passthrough": _system("passthrough", 2.0, 1600, idle=36),
            "aiguillage": _system("aiguillage", 2.5, 2000, idle=44),
            "litellm": _system("litellm", 100.0, 40, idle=700),
        },
        "controlplane": {
            "controlplane_start_s": 3.0,
            "scale": {
                "namespaces": 100,
                "routes": 1000,
                "providers": 20,
                "kubectl_apply_s": 20.0,
                "start_to_primed_s": 2.0,
                "start_to_all_configmaps_s": 12.0,
                "primed_to_all_configmaps_s": 10.0,
                "operator_rss_after_render_mb": 120.0,
                "operator_rss_end_mb": 125.0,
                "operator_hwm_mb": 130.0,
                "provider_edit": {
                    "affected_namespaces": 10,
                    "rewritten_namespaces": 10,
                    "unexpected_rewrites": [],
                    "apply_start_to_all_s": 1.5,
                    "apply_return_to_all_s": 1.1,
                },
            },
            "apply_to_configmap": {
                "from_apply_start": {"n": 20, "p50": 0.4, "p95": 0.5, "max": 0.6, "mean": 0.4},
                "from_apply_return": {"n": 20, "p50": 0.01, "p95": 0.02, "max": 0.03, "mean": 0.01},
            },
        },
        "reload": {"n": 5, "p50": 0.25, "p95": 0.45, "max": 0.5, "mean": 0.25},
        "profile": {
            "samples": 10,
            "top": [{"function": "f (a.py)", "own_pct": 50.0, "total_pct": 60.0}],
            "load": {"rps": 1000.0, "requests": 100},
        },
    }


def test_added_latency_is_the_difference_with_direct_at_the_same_concurrency() -> None:
    derived = report.derive(make_results())
    rows = {(r["stream"], r["concurrency"]): r for r in derived["overhead"]["aiguillage"]}
    assert rows[(False, 1)]["added_p50_ms"] == 0.75  # 1.25 - 0.5
    assert rows[(False, 16)]["added_p99_ms"] == 12.0  # 20 - 8
    assert rows[(True, 16)]["ttft_overhead_p50_ms"] == 3.0  # 5 - 2


def test_ratios_use_the_best_throughput_over_concurrencies() -> None:
    derived = report.derive(make_results())
    assert derived["max_rps"]["aiguillage"]["plain"] == {"rps": 2000, "concurrency": 16}
    assert derived["ratios"]["aiguillage_vs_litellm_max_rps"] == 50.0
    assert derived["ratios"]["aiguillage_vs_passthrough_max_rps"] == 1.25


def test_targets_say_met_missed_or_not_measured() -> None:
    results = make_results()
    targets = {t["name"]: t for t in report.derive(results)["targets"]}
    assert targets["Sidecar idle RSS"]["met"] is True
    assert targets["Added latency p50 at c=16"]["met"] is False
    assert targets["kubectl apply → ConfigMap p95"]["met"] is True
    assert targets["Operator peak RSS (1000 routes)"]["met"] is True
    del results["controlplane"]
    targets = {t["name"]: t for t in report.derive(results)["targets"]}
    assert targets["kubectl apply → ConfigMap p95"]["met"] is None


def test_markdown_has_every_system_side_by_side_and_the_charts() -> None:
    results = make_results()
    results["derived"] = report.derive(results)
    text = report.markdown(results, {"Latency": "bench/latency.png"}, "../bench/results.jsonl")
    for label in ("Direct", "Passthrough", "Aiguillage", "Litellm"):
        assert f"| {label} | 16 |" in text
    assert "![Latency](bench/latency.png)" in text
    assert "| 1 | `f (a.py)` | 50.0% | 60.0% |" in text
    assert "**missed**" in text
    assert "(../bench/results.jsonl)" in text


def test_a_failed_system_leaves_its_rows_out() -> None:
    results = make_results()
    results["systems"]["litellm"] = {**results["systems"]["litellm"], "cells": [], "error": "x"}
    results["derived"] = report.derive(results)
    assert results["derived"]["ratios"]["aiguillage_vs_litellm_max_rps"] is None
    assert "| Litellm | 16 |" not in report.markdown(results, {}, "h")


def test_json_line_is_one_line_of_json() -> None:
    results = make_results()
    line = report.json_line(results)
    assert "\n" not in line
    assert json.loads(line)["systems"]["aiguillage"]["idle_rss_mb"] == 44
