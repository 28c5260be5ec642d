"""The soak's reading of an audit trail: one line per request, the chain's checkpoints apart."""

from __future__ import annotations

from pathlib import Path

import orjson

from aiguillage.devtools.bench.soak import read_audit


def test_checkpoints_are_not_counted_as_requests_and_duplicates_are(tmp_path: Path) -> None:
    ok = {"requestId": "a", "status": 200, "outcome": "ok", "attempts": []}
    failed = {
        "requestId": "b",
        "status": 502,
        "outcome": "all_targets_failed",
        "attempts": [{"outcome": "timeout"}],
    }
    checkpoint = {"kind": "checkpoint", "chain": "ns/pod/x", "seq": 3, "signature": None}
    trail = tmp_path / "audit.jsonl"
    trail.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (ok, checkpoint, failed, ok)))
    lines, duplicates, statuses, outcomes, unexplained, circuits = read_audit(trail)
    assert (lines, duplicates) == (3, 1)
    assert statuses == {"200": 2, "502": 1}
    assert outcomes["ok"] == 2
    assert (unexplained, circuits) == (0, 0)
