"""Pieces shared by every kind: base model, conditions and status."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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


CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", json_schema_extra={"example": "FR"})]
CountryOrGroup = Annotated[str, Field(pattern=r"^([A-Z]{2}|EU|EEA)$")]


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

    name: str = Field(min_length=1)
    """Name of the Secret."""
    key: str = Field(min_length=1)
    """Key inside the Secret's data."""
