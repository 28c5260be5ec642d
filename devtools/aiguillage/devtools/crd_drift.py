"""Fail when crds/ or the chart's CRDs differ from what the pydantic models generate.

Run by ``make lint``; fix drift with ``make crds``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiguillage.operator.crdgen import documents

ROOT = Path(__file__).resolve().parents[3]
TARGETS = {ROOT / "crds": False, ROOT / "charts" / "aiguillage" / "templates" / "crds": True}


def main() -> int:
    drifted = []
    for folder, helm in TARGETS.items():
        expected = documents(helm)
        present = {p.name for p in folder.glob("*.yaml")} if folder.is_dir() else set()
        for name, text in expected.items():
            path = folder / name
            if not path.is_file() or path.read_text() != text:
                drifted.append(str(path.relative_to(ROOT)))
        drifted += [str((folder / n).relative_to(ROOT)) for n in sorted(present - set(expected))]
    if drifted:
        print("CRDs differ from the pydantic models; run `make crds`:", *drifted, sep="\n  ")
        return 1
    print("CRDs match the pydantic models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
