"""metav1.LabelSelector, for AIPolicy's namespaceSelector: the model, its CEL rules, matching.

Matching follows Kubernetes exactly: every ``matchLabels`` entry and every
``matchExpressions`` requirement must hold, and an empty selector selects everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from aiguillage.operator.api.common import ApiModel, Matching, k8s

# A label key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _NAME + "$"
LABEL_VALUE = r"^(" + _NAME + ")?$"
_KEY_MESSAGE = (
    "must be a label key: an optional DNS prefix and '/', then up to 63 letters, digits, "
    "'-', '_' or '.', starting and ending with a letter or digit"
)
_VALUE_MESSAGE = (
    "must be a label value: up to 63 letters, digits, '-', '_' or '.', starting and ending "
    "with a letter or digit"
)
LabelKey = Annotated[str, Matching(LABEL_KEY, _KEY_MESSAGE, 317)]
LabelValue = Annotated[str, Matching(LABEL_VALUE, _VALUE_MESSAGE, 63)]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_VALUES_RULE = {
    "rule": "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
    ": (!has(self.values) || size(self.values) == 0)",
    "message": "values must be given for In and NotIn, and only for them",
}


class LabelSelectorRequirement(ApiModel):
    """One condition on a label."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": k8s(**{"x-kubernetes-validations": [_VALUES_RULE]})
    }
    key: LabelKey
    """The label's key."""
    operator: SelectorOperator
    """In, NotIn (the value is / is not one of values), Exists or DoesNotExist."""
    values: Annotated[list[LabelValue], Field(max_length=64)] | None = None
    """Values for In and NotIn."""

    @model_validator(mode="after")
    def _values(self) -> LabelSelectorRequirement:
        wants = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if wants != bool(self.values):
            raise ValueError(_VALUES_RULE["message"])
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is SelectorOperator.EXISTS:
            return self.key in labels
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in (self.values or ())
        return inside if self.operator is SelectorOperator.IN else not inside

    def text(self) -> str:
        if self.operator is SelectorOperator.EXISTS:
            return self.key
        if self.operator is SelectorOperator.DOES_NOT_EXIST:
            return f"!{self.key}"
        word = "in" if self.operator is SelectorOperator.IN else "notin"
        return f"{self.key} {word} ({','.join(self.values or ())})"


_KEYS_RULE = {
    "rule": f"self.all(k, k.matches(r'{LABEL_KEY}') && size(k) <= 317)",
    "message": f"each key {_KEY_MESSAGE}",
}


class LabelSelector(ApiModel):
    """Which namespaces, by their labels (a metav1.LabelSelector). Every condition given
    must hold; an empty selector ({}) selects every namespace."""

    match_labels: Annotated[
        dict[str, LabelValue],
        Field(max_length=64, json_schema_extra=k8s(**{"x-kubernetes-validations": [_KEYS_RULE]})),
    ] = Field(default_factory=dict)
    """Labels a namespace must carry with exactly these values."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=64)] = Field(
        default_factory=list
    )
    """Conditions on labels a namespace must meet."""

    @field_validator("match_labels")
    @classmethod
    def _keys(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if len(key) > 317 or not re.fullmatch(LABEL_KEY, key):
                raise ValueError(f"{key!r}: {_KEYS_RULE['message']}")
        return labels

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            e.matches(labels) for e in self.match_expressions
        )

    def text(self) -> str:
        """The selector as kubectl writes one (``team=a,env in (prod)``); ``*`` for all."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts += [e.text() for e in self.match_expressions]
        return ",".join(parts) or "*"
