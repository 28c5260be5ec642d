"""``bench/auditchain.py``: the audit chain's micro-benchmark runs and reports each step."""

from __future__ import annotations

import pytest

from aiguillage.devtools.bench import auditchain


def test_it_times_serialising_linking_and_a_signed_checkpoint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert auditchain.main(["--calls", "40", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("record line: ")
    length = int(out.split()[2])
    assert 900 < length < 1500  # about 1 KB, as the docs say
    for step in ("serialise the record", "link it into the chain", "checkpoint, signed"):
        assert step in out
    assert "a checkpoint every 1000 records adds" in out
