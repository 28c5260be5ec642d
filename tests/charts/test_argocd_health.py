"""The Argo CD health script shipped in the chart, run by a real Lua runtime (lupa)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

SCRIPT = (
    Path(__file__).resolve().parents[2] / "charts/aiguillage/files/argocd/health.lua"
).read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return str(result["status"]), str(result["message"])


def route(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "chat", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


def ready(value: str, message: str, reason: str = "Serving") -> dict[str, Any]:
    return {"type": "Ready", "status": value, "reason": reason, "message": message}


SERVING = ready("True", "serving all 2 targets")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (route(1, None), ("Progressing", "Waiting for the aiguillage operator to report status")),
        (
            route(3, {"observedGeneration": 2, "conditions": [SERVING]}),
            ("Progressing", "Waiting for the aiguillage operator to process generation 3"),
        ),
        (
            route(2, {"observedGeneration": 2, "conditions": [SERVING]}),
            ("Healthy", "serving all 2 targets"),
        ),
        (
            route(2, {"observedGeneration": 2, "conditions": [
                {"type": "Accepted", "status": "True", "message": "route is valid"},
                ready("False", 'spec.targets[0]: provider "ghost" does not exist', "NotServed"),
            ]}),
            ("Degraded", 'spec.targets[0]: provider "ghost" does not exist'),
        ),
        (
            route(2, {"observedGeneration": 2, "conditions": [ready("Unknown", "checking")]}),
            ("Progressing", "checking"),
        ),
        (
            route(2, {"observedGeneration": 2, "conditions": []}),
            ("Progressing", "No Ready condition yet"),
        ),
    ],
    ids=["no-status", "stale-generation", "ready", "degraded", "unknown", "no-ready"],
)  # fmt: skip
def test_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert health(obj) == expected
