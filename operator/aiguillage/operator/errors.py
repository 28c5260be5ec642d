"""Errors of the control plane.

AiguillageError
├── ManifestError      one bad object in a manifest file or from the API server
│                      (file, object, field and reason; shown one per line)
└── InjectionRefused   a pod opted in to the sidecar cannot get one that would work
                       (the admission webhook denies its creation with the reasons)
"""

from __future__ import annotations

from dataclasses import dataclass


class AiguillageError(Exception):
    """Base of every error the operator and CLI raise on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one object, precise enough to fix without guessing."""

    where: str  # "file.yaml" or "namespace/name"; may be empty
    obj: str  # "AIRoute support/summarizer"
    field: str  # "spec.targets[2].provider"; may be empty
    reason: str

    def __str__(self) -> str:
        parts = [p for p in (self.where, self.obj, self.field) if p]
        return ": ".join([*parts, self.reason])


class ManifestError(AiguillageError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InjectionRefused(AiguillageError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))
