"""The CRDs generated from the pydantic models are structural and self-documenting."""

from __future__ import annotations

from typing import Any

import pytest

from aiguillage.operator.crdgen import KINDS, crd


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        out += walk(sub, f"{path}.{name}")
    if "items" in schema:
        out += walk(schema["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_spec_field_is_described_and_typed(kind: Any) -> None:
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema["properties"]["spec"], "spec"):
        scalar_item = path.endswith("[]") and node.get("type") != "object"
        assert scalar_item or node.get("description"), f"{path} has no description"
        assert "type" in node or "x-kubernetes-preserve-unknown-fields" in node, path
        assert "anyOf" not in node, path
        assert "$ref" not in node, path


def test_route_targets_are_a_map_list_so_duplicates_are_rejected() -> None:
    route = next(k for k in KINDS if k.kind == "AIRoute")
    spec = crd(route)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    targets = spec["properties"]["targets"]
    assert targets["x-kubernetes-list-type"] == "map"
    assert targets["x-kubernetes-list-map-keys"] == ["provider", "model"]


def test_printer_columns_and_short_names() -> None:
    by_kind = {k.kind: crd(k) for k in KINDS}
    cols = [
        c["name"] for c in by_kind["AIRoute"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert cols == [
        "Model",
        "Strategy",
        "Targets",
        "Residency",
        "Spend",
        "Ready",
        "Age",
        "Policies",
    ]
    assert by_kind["AIProvider"]["spec"]["names"]["shortNames"] == ["aip"]
    policy = by_kind["AIPolicy"]["spec"]
    assert policy["names"]["shortNames"] == ["aipol"]
    assert policy["scope"] == "Cluster"
    assert policy["names"]["categories"] == ["aiguillage"]
    shown = [c["name"] for c in policy["versions"][0]["additionalPrinterColumns"]
             if "priority" not in c]  # fmt: skip
    assert shown == ["Selector", "Mode", "Residency", "Limits", "Namespaces", "Ready", "Age"]
    assert by_kind["AIProvider"]["spec"]["scope"] == "Cluster"
    assert by_kind["AIRoute"]["spec"]["names"]["categories"] == ["aiguillage"]
