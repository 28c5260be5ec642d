"""A mixed run's trail (real sidecar processes, simulated providers), made once for the
report tests that need a realistic one."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiguillage.devtools.mixedrun import MixedRun


@pytest.fixture(scope="package")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> MixedRun:
    """Four sidecars in three namespaces after 400 requests, stopped (trails sealed)."""
    run = MixedRun(tmp_path_factory.mktemp("mixed"), seed=3, checkpoint_records=40).start()
    try:
        statuses = run.traffic(400)
    finally:
        run.stop()
    assert statuses[200] > 300, statuses
    return run


def trail_files(run: MixedRun) -> list[Path]:
    return sorted(run.audit_dir.glob("*.jsonl"))
