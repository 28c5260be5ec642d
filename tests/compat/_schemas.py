"""The published wire schemas the sidecar's answers are checked against.

**OpenAI**: the OpenAPI description OpenAI publishes (``openai/openai-openapi``,
``openapi.yaml``). No OpenAI package on PyPI or npm ships it; ``llm-comply`` (PyPI, MIT,
pinned in ``constraints-compat.txt``) bundles it unchanged as ``specs/openai_chat.json``
(``info.version`` 2.3.0), and only that file is used here. Its schemas are OpenAPI 3.0:
:func:`openai_validator` turns ``nullable: true`` into JSON Schema's ``null`` type and
``oneOf`` into ``anyOf`` (the spec uses ``oneOf`` for unions whose members overlap, which
JSON Schema's "exactly one" would reject for valid answers), then validates with
``jsonschema`` (draft 2020-12), ``$ref`` resolved within the spec.

**Anthropic**: the ``anthropic`` SDK's own pydantic types, strictly: every required field
present, right types, and no field the type does not know (:func:`anthropic_strict`).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import pydantic

SPEC_PACKAGE = "llm_comply.specs"
SPEC_FILE = "openai_chat.json"


@functools.cache
def openai_spec() -> dict[str, Any]:
    text = resources.files(SPEC_PACKAGE).joinpath(SPEC_FILE).read_text()
    spec: dict[str, Any] = json.loads(text)
    return spec


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-")}
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "$ref" in out or "anyOf" in out or "allOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _errata(schemas: dict[str, Any]) -> None:
    """Where the published spec is stricter than the API it describes, made to match the API.

    - Streamed legacy completions: every chunk but the last has ``finish_reason: null`` (as
      for chat chunks, whose schema says so), but the shared completion schema forbids null.
    """
    choice = schemas["CreateCompletionResponse"]["properties"]["choices"]["items"]
    choice["properties"]["finish_reason"]["nullable"] = True


@functools.cache
def _components() -> dict[str, Any]:
    components = copy.deepcopy(openai_spec()["components"])
    _errata(components["schemas"])
    return {"schemas": _to_json_schema(components["schemas"])}


@functools.cache
def openai_validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator of the spec's ``components.schemas.<schema_name>``."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    return jsonschema.Draft202012Validator(root)


def check_openai(schema_name: str, instance: Any) -> None:
    """Raise AssertionError listing every way ``instance`` breaks the spec's schema."""
    errors = sorted(openai_validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
        raise AssertionError(f"{schema_name}: {details}")


def anthropic_strict(model_type: Any, data: Any) -> Any:
    """``data`` validated as ``model_type`` (an anthropic SDK type), refusing unknown fields."""
    value = pydantic.TypeAdapter(model_type).validate_python(data)
    unknown = list(_extras(value, "$"))
    assert not unknown, f"fields the anthropic SDK does not know: {unknown}"
    return value


def _extras(value: Any, where: str) -> Any:
    if isinstance(value, pydantic.BaseModel):
        for name in value.model_extra or {}:
            yield f"{where}.{name}"
        for name in type(value).model_fields:
            yield from _extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _extras(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _extras(item, f"{where}.{key}")
