"""The data-protection micro-benchmark: every size and kind of text is measured, the
findings are what each kind of text holds, and the memory numbers are read."""

from __future__ import annotations

from aiguillage.devtools.bench import privacy
from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.rules import DataProtectionRules


def test_rows_for_every_size_and_kind_of_text() -> None:
    engine = DataProtectionEngine(DataProtectionRules.model_validate(privacy.RULES))
    rows = privacy.measure(engine, rounds=1)
    assert [(kind, size) for kind, size, _, _ in rows] == [
        (kind, size) for kind in privacy.TEXTS for size in privacy.SIZES
    ]
    findings = {(kind, size): n for kind, size, _, n in rows}
    assert findings[("no personal data", 131072)] == 0
    assert findings[("look-alikes", 131072)] == 0
    # ten values per ~300-character unit, every one found
    assert findings[("personal data", 1024)] >= 25
    assert findings[("personal data", 131072)] >= 128 * findings[("personal data", 1024)] - 60


def test_report_and_memory() -> None:
    before, after = privacy.rss_cost()
    assert 0 < before < after
    table = privacy.report([("no personal data", 1024, (0.002, 0.001), 0)], (before, after), 7, 3.5)
    assert "--rounds 7" in table
    assert "load average 3.5" in table
    assert "| no personal data | 1 KB | 0 | 2.000 ms | 1.000 ms | 1000.0 µs |" in table
    assert f"**+{after - before:.1f} MB**" in table
