"""The sidecar profiled under load with py-spy, native frames included (when the benchmark's
tools venv has py-spy: tests do not install it); a round's CPU per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.bench import proxy, systems, tools
from aiguillage.devtools.bench.procs import Procs


def _py_spy() -> Path:
    path = tools.cache_dir() / "bench-venv" / "bin" / "py-spy"
    if not path.exists():
        pytest.skip("py-spy is not installed (make bench-quick installs it)")
    return path


def test_a_native_profile_names_the_sidecar_s_functions(tmp_path: Path) -> None:
    py_spy = _py_spy()
    with Procs(tmp_path / "logs") as procs:
        _, upstream = systems.start_upstream(procs, cpus=None, chunks=4, interval=0.0)
        sidecar = systems.start_sidecar(procs, upstream, tmp_path, cpus=None)
        summary = proxy.profile_sidecar(
            sidecar, tools.build_loadgen(), py_spy, procs, seconds=3, load_cpus=None,
            workdir=tmp_path, top=50,
        )  # fmt: skip
    assert "error" not in summary, summary
    assert summary["mode"] in ("native", "python")  # python: native unwinding unavailable
    assert summary["samples"] > 0
    assert summary["load"]["requests"] > 0
    functions = " ".join(row["function"] for row in summary["top"])
    assert "aiohttp/" in functions or "aiguillage/sidecar/" in functions
    assert sum(row["own_pct"] for row in summary["top"]) <= 100.1


def test_a_round_records_the_system_s_cpu_per_request(tmp_path: Path) -> None:
    """The upstream's own process measured as a system: its on-CPU time over the round's
    requests (warm-up included); none for a target without a process of its own."""
    program = tools.build_upstream()
    with Procs(tmp_path / "logs") as procs:
        proc, url = systems.start_upstream(
            procs, cpus=None, chunks=4, interval=0.0, program=program
        )
        load = proxy.Load(200, 20)
        measured = systems.System("direct", url, systems.direct(url).headers, proc)
        cell = proxy.run_loadgen(
            tools.build_loadgen(), measured, stream=False, c=4, load=load, max_seconds=60,
            cpus=None, workdir=tmp_path,
        )  # fmt: skip
        unmeasured = proxy.run_loadgen(
            tools.build_loadgen(), systems.direct(url), stream=False, c=4, load=load,
            max_seconds=60, cpus=None, workdir=tmp_path,
        )  # fmt: skip
    assert cell["errors"] == 0
    assert cell["completed"] == 200
    # between 1 µs and 1 s of CPU a request: counted, and per request, not per round
    assert 1 < cell["cpu_us_per_request"] < 1e6
    assert unmeasured["cpu_us_per_request"] is None
