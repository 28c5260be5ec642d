"""Helpers for the data-protection tests: rules and engines built from plain dicts (the
YAML shape of ``spec.dataProtection``), compiled once per set of rules."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from aiguillage.sidecar.privacy.engine import DataProtectionEngine
from aiguillage.sidecar.privacy.rules import BUILTIN_CATEGORIES, DataProtectionRules


@functools.cache
def _engine(rules_json: bytes) -> DataProtectionEngine:
    return DataProtectionEngine(DataProtectionRules.model_validate_json(rules_json))


def engine(rules: dict[str, Any]) -> DataProtectionEngine:
    return _engine(orjson.dumps(rules))


def audit_everything() -> DataProtectionEngine:
    return engine({"rules": [{"categories": list(BUILTIN_CATEGORIES), "action": "audit"}]})


def found(text: str, eng: DataProtectionEngine | None = None) -> list[tuple[str, str]]:
    """(category, value) of each finding in ``text``."""
    eng = eng or audit_everything()
    return [(f.category, text[f.start : f.end]) for f in eng.find(text)]
