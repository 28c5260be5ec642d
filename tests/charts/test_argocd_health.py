"""The Argo CD health checks, tested the way Argo CD tests its own: every case listed in a
kind's ``health_test.yaml`` (input object from ``testdata/``, expected status and message) is
run through its ``health.lua`` by a real Lua runtime (lupa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

CUSTOMIZATIONS = Path(__file__).resolve().parents[2] / "charts/aiguillage/resource_customizations"


def health(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {"status": str(result["status"]), "message": str(result["message"])}


def cases() -> list[Any]:
    found = []
    for test_file in sorted(CUSTOMIZATIONS.glob("*/*/health_test.yaml")):
        kind_dir = test_file.parent
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            name = f"{kind_dir.parent.name}/{kind_dir.name}:{Path(case['inputPath']).stem}"
            found.append(pytest.param(kind_dir, case, id=name))
    return found


def test_every_kind_the_operator_reports_on_has_a_check() -> None:
    kinds = sorted(p.parent.name for p in CUSTOMIZATIONS.glob("aiguillage.dev/*/health.lua"))
    assert kinds == ["AIProvider", "AIRoute"]


@pytest.mark.parametrize(("kind_dir", "case"), cases())
def test_health(kind_dir: Path, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((kind_dir / case["inputPath"]).read_text())
    assert obj["kind"] == kind_dir.name

    assert health((kind_dir / "health.lua").read_text(), obj) == case["healthStatus"]
