"""Generate the CustomResourceDefinitions from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes structural schema: ``$ref``s
are inlined, optional fields lose their ``null`` alternative, titles go, and the
``x-kubernetes-*`` extensions and CEL rules declared on the models stay.
``make crds`` writes ``crds/`` and the chart's copy; ``make lint`` fails on drift.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from aiguillage.operator.api.common import GROUP, VERSION
from aiguillage.operator.api.policy import AIPolicySpec, AIPolicyStatus
from aiguillage.operator.api.provider import AIProviderSpec, AIProviderStatus
from aiguillage.operator.api.route import AIRouteSpec, AIRouteStatus

KEEP = {
    "type", "description", "properties", "required", "items", "enum", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties", "default",
    "additionalProperties", "example",
}  # fmt: skip


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, str | int], ...]


KINDS = (
    Kind(
        "AIProvider", "aiproviders", ("aip",), "Cluster", AIProviderSpec, AIProviderStatus,
        "An AI provider endpoint (OpenAI, Mistral, Azure OpenAI, Bedrock...) with its "
        "residency, credentials and models. Owned by the platform team.",
        (
            {"name": "API", "type": "string", "jsonPath": ".spec.api"},
            {"name": "Location", "type": "string", "jsonPath": ".spec.residency.location"},
            {"name": "Jurisdiction", "type": "string", "jsonPath": ".spec.residency.jurisdiction"},
            {"name": "Models", "type": "integer", "jsonPath": ".status.models"},
            {"name": "Ready", "type": "string",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    Kind(
        "AIRoute", "airoutes", ("air",), "Namespaced", AIRouteSpec, AIRouteStatus,
        "A model name apps in this namespace can request, the provider models that serve "
        "it, and where its data may be processed. Owned by app teams.",
        (
            {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
            {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
            {"name": "Targets", "type": "string", "jsonPath": ".status.targets",
             "description": "targets served / declared"},
            {"name": "Residency", "type": "string", "jsonPath": ".spec.residency.locations"},
            {"name": "Spend", "type": "string", "jsonPath": ".status.spend.summary",
             "description": "month-to-date spend in EUR, and the share of the route budget"},
            {"name": "Ready", "type": "string",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Policies", "type": "string", "jsonPath": ".status.policies",
             "priority": 1},
        ),
    ),
    Kind(
        "AIPolicy", "aipolicies", ("aipol",), "Cluster", AIPolicySpec, AIPolicyStatus,
        "Rules the platform team imposes on every AIRoute of the namespaces it selects: "
        "residency, providers, rate limits and budgets, data protection. Several combine so "
        "that the most restrictive wins; routes can tighten them, never loosen them.",
        (
            {"name": "Selector", "type": "string", "jsonPath": ".status.selector",
             "description": "namespace selector (* = every namespace)"},
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Residency", "type": "string", "jsonPath": ".status.residency"},
            {"name": "Limits", "type": "string", "jsonPath": ".status.limits"},
            {"name": "Namespaces", "type": "integer", "jsonPath": ".status.selectedNamespaces"},
            {"name": "Ready", "type": "string",
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Providers", "type": "string", "jsonPath": ".status.providers",
             "priority": 1},
            {"name": "Data-Protection", "type": "string", "jsonPath": ".status.dataProtection",
             "priority": 1},
            {"name": "Routes", "type": "integer", "jsonPath": ".status.matchedRoutes",
             "priority": 1},
        ),
    ),
)  # fmt: skip


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node as a structural OpenAPI v3 schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {schema}")
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        if outer.get("default", 0) is None:
            del outer["default"]
        return structural({**options[0], **outer}, defs)
    if "const" in schema:
        schema = {**schema, "enum": [schema["const"]]}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            continue  # a boolean is not allowed in structural schemas (extra="forbid")
        elif key == "default":
            out[key] = _without_nulls(value)
        elif key in KEEP and key not in ("example",):
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "description" in out:
        out["description"] = " ".join(out["description"].split())
    return out


def _without_nulls(value: Any) -> Any:
    """Defaults must validate against the schema, which has no nulls."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd(kind: Kind) -> dict[str, Any]:
    spec = _schema(kind.spec)
    status = _schema(kind.status)
    status.pop("required", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["aiguillage"],
            },
            "scope": kind.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from the pydantic models in operator/. Do not edit.\n"


def documents(helm: bool = False) -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    out = {}
    for kind in KINDS:
        text = yaml.safe_dump(crd(kind), sort_keys=False, width=100)
        if helm:
            text = (
                "{{- if .Values.crds.enabled }}\n"
                + text.replace("metadata:\n  name:", "metadata:\n  annotations:\n"
                               "    {{- if .Values.crds.keep }}\n"
                               "    helm.sh/resource-policy: keep\n"
                               "    {{- end }}\n  name:", 1)
                + "{{- end }}\n"
            )  # fmt: skip
        out[f"{kind.plural}.{GROUP}.yaml"] = HEADER + text
    return out


def main(out: Path | None, helm: bool = False) -> int:
    docs = documents(helm)
    if out is None:
        sys.stdout.write("---\n".join(docs.values()))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (out / name).write_text(text)
    return 0
