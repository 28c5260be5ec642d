"""docs/compatibility.md is what devtools/compatdoc.py renders from docs/compatibility.json."""

from __future__ import annotations

import json
from pathlib import Path

from aiguillage.devtools import compatdoc

ROOT = Path(__file__).resolve().parents[2]


def cell(
    client: str, feature: str, fmt: str, stream: bool, outcome: str, reason: str = ""
) -> dict[str, object]:
    return {
        "client": client,
        "feature": feature,
        "format": fmt,
        "stream": stream,
        "outcome": outcome,
        "reason": reason,
    }


def test_the_committed_matrix_is_what_the_committed_results_render_to() -> None:
    results = json.loads((ROOT / compatdoc.RESULTS).read_text())
    assert (ROOT / compatdoc.DOC).read_text() == compatdoc.render(results)
    assert (ROOT / compatdoc.RESULTS).read_text() == compatdoc.canonical(results)
    assert all(c["outcome"] in ("pass", "n/a") for c in results["cells"])


def test_render_marks_each_cell_and_explains_the_not_applicable_ones() -> None:
    results = {
        "versions": {"openai": "2.54.0"},
        "cells": [
            cell("SDK", "text", "openai", False, "pass"),
            cell("SDK", "text", "openai", True, "fail"),
            cell("SDK", "text", "bedrock", False, "n/a", "no such API"),
            cell("SDK", "embeddings", "anthropic", False, "n/a", "no such API"),
        ],
    }
    doc = compatdoc.render(results)

    assert "| SDK | text | ✓ ✗ | — — | — — | — — | — — | n/a[^1] — |" in doc
    assert "| SDK | embeddings | — — | — — | n/a[^1] — | — — | — — | — — |" in doc
    assert "[^1]: no such API" in doc
    assert "4 cells: 1 pass, 2 not applicable, 1 failed or skipped." in doc
    assert "| openai | 2.54.0 |" in doc


def test_check_names_the_drift(tmp_path: Path) -> None:
    results = {"versions": {}, "cells": [cell("SDK", "text", "openai", False, "pass")]}
    stored, doc = tmp_path / "r.json", tmp_path / "d.md"
    stored.write_text(compatdoc.canonical(results))
    doc.write_text(compatdoc.render(results))
    assert compatdoc.check(results, stored, doc) == []

    changed = {"versions": {}, "cells": [cell("SDK", "text", "openai", False, "fail")]}
    problems = compatdoc.check(changed, stored, doc)
    assert len(problems) == 2
    assert '"outcome": "fail"' in problems[0]
