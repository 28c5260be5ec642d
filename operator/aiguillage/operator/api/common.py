"""Pieces shared by every kind: base model, conditions and status."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

from aiguillage.operator.names import DNS_SUBDOMAIN, DNS_SUBDOMAIN_MAX, SECRET_KEY

GROUP = "aiguillage.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """Base for CRD fields: camelCase on the wire, descriptions from docstrings."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
    )


def k8s(**extensions: Any) -> dict[str, Any]:
    """JSON-schema extras for a model or field (x-kubernetes-* keys, CEL rules)."""
    return extensions


@dataclass(frozen=True)
class Matching:
    """Annotates a string that must match ``pattern``. Pydantic and the API server (through
    a CEL rule, whose message is friendlier than a bare regex) give the same message."""

    pattern: str
    message: str
    max_length: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        compiled = re.compile(self.pattern)

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(
            check, core_schema.str_schema(max_length=self.max_length)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        out = dict(handler(schema))
        rule = {"rule": f"self.matches(r'{self.pattern}')", "message": self.message}
        out["x-kubernetes-validations"] = [rule]
        return out


ObjectName = Annotated[
    str,
    Matching(
        DNS_SUBDOMAIN,
        "must be a Kubernetes object name: lower-case letters, digits, '-' or '.', starting "
        "and ending with a letter or digit",
        DNS_SUBDOMAIN_MAX,
    ),
]
SecretKey = Annotated[
    str, Matching(SECRET_KEY, "must be a Secret key: letters, digits, '-', '_' or '.'", 253)
]
CountryCode = Annotated[
    str,
    Matching(r"^[A-Z]{2}$", "must be an ISO 3166-1 alpha-2 country code in capitals, e.g. FR", 16),
]
CountryOrGroup = Annotated[
    str,
    Matching(r"^([A-Z]{2}|EU|EEA)$", "must be a country code in capitals (e.g. FR), EU or EEA", 16),
]


class Condition(ApiModel):
    """A metav1.Condition."""

    model_config = ConfigDict(extra="allow")
    type: str
    """Type of condition: Accepted, ResolvedRefs, ResidencyCompliant, Ready..."""
    status: str
    """True, False or Unknown."""
    reason: str = ""
    """One-word CamelCase reason for the condition's last transition."""
    message: str = ""
    """Human-readable details about the transition."""
    last_transition_time: str = ""
    """When the condition last changed status (RFC 3339)."""
    observed_generation: int = 0
    """The .metadata.generation the condition was set for."""


class ObjectStatus(ApiModel):
    """What the operator observed and did."""

    model_config = ConfigDict(extra="allow")
    observed_generation: int = 0
    """The .metadata.generation the operator last processed."""
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra=k8s(
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
            )
        ),
    ] = Field(default_factory=list)
    """Current state, one entry per condition type."""


class SecretKeyRef(ApiModel):
    """A key in a Secret in the operator's namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: SecretKey
    """Key inside the Secret's data."""
