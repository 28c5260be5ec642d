"""Made-up results of one benchmark run, as `run.main` gathers them, for the tests of
`derive`, `report` and `sections` (no process is started)."""

from __future__ import annotations

import json
from typing import Any

from aiguillage.devtools.bench.proxy import QUICK
from aiguillage.devtools.bench.run import plan_dict


def _cell(
    c: int,
    stream: bool,
    p50: float,
    p99: float,
    rps: float,
    ttft: float = 0.0,
    cpu_us: float | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "concurrency": c,
        "stream": stream,
        "completed": 100,
        "errors": 0,
        "rps": rps,
        "cpu_us_per_request": cpu_us,
        "latency_ms": {"p50": p50, "p90": p50, "p99": p99, "max": p99, "mean": p50},
    }
    if stream:
        item["ttft_ms"] = {"p50": ttft, "p90": ttft, "p99": ttft * 2, "max": ttft * 2, "mean": ttft}
    return item


def _system(key: str, scale: float, rps16: float, idle: float | None = None) -> dict[str, Any]:
    # on-CPU time per request: 100 µs per unit of scale (1,000 per stream); none for direct
    cpu = None if key == "direct" else 100 * scale
    stream_cpu = None if cpu is None else 10 * cpu
    return {
        "key": key,
        "label": key.title(),
        "cells": [
            _cell(1, False, 0.5 * scale, 1.0 * scale, 1000 / scale, cpu_us=cpu),
            _cell(16, False, 4.0 * scale, 8.0 * scale, rps16, cpu_us=cpu),
            _cell(1, True, 330 * scale, 340 * scale, 3, ttft=1.0 * scale, cpu_us=stream_cpu),
            _cell(16, True, 335 * scale, 350 * scale, 45, ttft=2.0 * scale, cpu_us=stream_cpu),
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
        "upstream": {
            "chunks": 64,
            "chunk_interval_s": 0.005,
            "kind": "go",
            "note": "Go simulated upstream /cache/upstream/upstream-0123",
            "python_direct": _cell(16, False, 8.0, 16.0, 2400),
        },
        "loadgen": {"kind": "go", "note": "Go"},
        "litellm": {"version": "1.108.7", "workers": 1},
        "portkey": {"version": "1.15.2", "node": "v20.20.2"},
        "commands": ["python -m x"],
        "systems": {
            "direct": _system("direct", 1.0, 4000),
            "passthrough": _system("passthrough", 2.0, 1600, idle=36),
            "aiguillage": _system("aiguillage", 2.5, 2000, idle=44),
            "litellm": _system("litellm", 100.0, 40, idle=700),
            "portkey": _system("portkey", 8.0, 400, idle=90),
        },
        "capacity": {
            "direct": _cell(16, True, 20, 40, 800, ttft=15),
            "passthrough": _cell(16, True, 40, 80, 400, ttft=30, cpu_us=300),
            "aiguillage": _cell(16, True, 30, 60, 500, ttft=25, cpu_us=250),
            "portkey": _cell(16, True, 200, 400, 60, ttft=190, cpu_us=2000),
            "litellm": {"error": "load generator failed (2): boom"},
        },
        "memory": {
            "streams": {
                "aiguillage": {
                    "streams": 1000,
                    "completed": 1000,
                    "errors": 0,
                    "error_samples": [],
                    "max_in_flight": 1000,
                    "rss_before_mb": 45.0,
                    "peak_rss_mb": 71.5,
                    "rss_after_mb": 52.0,
                },
                "portkey": {"streams": 1000, "error": "load generator failed (2): too many"},
            },
            "long": {
                "idle_rss_mb": 44.0,
                "per_round": 20000,
                "rounds": [
                    {
                        "round": 1,
                        "requests": 20000,
                        "rss_mb": 50.0,
                        "hwm_mb": 51.0,
                        "rps": 1500.0,
                        "errors": 0,
                    },
                    {
                        "round": 2,
                        "requests": 40000,
                        "rss_mb": 51.0,
                        "hwm_mb": 51.5,
                        "rps": 1490.0,
                        "errors": 0,
                    },
                ],
                "growth_mb": 1.0,
                "growth_ratio": 0.02,
                "max_step_mb": 1.0,
            },
        },
        "imports": {
            "start_rss_mb": 13.0,
            "after_imports_rss_mb": 40.0,
            "imports_mb": 26.0,
            "idle_rss_mb": 44.0,
            "modules_imported": 300,
            "packages": [{"package": "aiohttp", "own_kb": 7168, "own_us": 120000, "modules": 54}],
            "top_own": [
                {
                    "module": "aiohttp.connector",
                    "own_kb": 2560,
                    "cumulative_kb": 2600,
                    "own_us": 1000,
                    "cumulative_us": 48600,
                }
            ],
        },
        "features": {
            "concurrencies": [1, 16],
            "rounds": 3,
            "loads": {"1": {"n": 1000, "warmup": 100}, "16": {"n": 3000, "warmup": 320}},
            "variants": {
                "standard": {"label": "std", "idle_rss_mb": 52.0},
                "no_residency": {"label": "no res", "idle_rss_mb": 51.5},
                "metrics_off": {
                    "label": "m off",
                    "switch": "AIGUILLAGE_METRICS=off",
                    "unavailable": "needs sidecar switch AIGUILLAGE_METRICS=off",
                },
            },
            "measured": {
                "standard/plain": {
                    "1": {"rps": 900.0, "p50_ms": 1.1, "p99_ms": 2.0, "cpu_us_per_request": 300.0},
                    "16": {
                        "rps": 1900.0,
                        "p50_ms": 8.0,
                        "p99_ms": 20.0,
                        "cpu_us_per_request": 280.0,
                    },
                },
                "no_residency/plain": {
                    "1": {"rps": 950.0, "p50_ms": 1.0, "p99_ms": 1.9, "cpu_us_per_request": 290.0},
                    "16": {
                        "rps": 2000.0,
                        "p50_ms": 7.5,
                        "p99_ms": 19.0,
                        "cpu_us_per_request": 270.0,
                    },
                },
            },
            "features": [
                {
                    "key": "residency",
                    "label": "Residency checks",
                    "on": "standard",
                    "off": "no_residency",
                    "body": "plain",
                    "max_throughput_cost": 0.10,
                },
                {
                    "key": "metrics",
                    "label": "Metrics (vs off)",
                    "on": "standard",
                    "off": "metrics_off",
                    "body": "plain",
                    "max_throughput_cost": 0.10,
                },
            ],
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
