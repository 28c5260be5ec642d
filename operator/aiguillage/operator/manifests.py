"""Read Kubernetes manifest files into an :class:`Inventory` (for ``aiguillage render``).

Objects of kinds Aiguillage does not read (Deployments, ...) are skipped, so a
whole GitOps directory can be given. Every problem is collected, not just the
first: the user fixes a file once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from aiguillage.operator.api.common import API_VERSION
from aiguillage.operator.errors import ManifestError, Problem
from aiguillage.operator.inventory import Inventory, parse_provider, parse_route, parse_secret


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        else:
            yield path


def load(paths: Iterable[Path], default_namespace: str | None, inv: Inventory) -> list[Problem]:
    """Add every object found in ``paths`` to ``inv``; return the problems found."""
    problems: list[Problem] = []
    for path in _files(paths):
        where = str(path)
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except OSError as exc:
            problems.append(Problem(where, "", "", f"cannot read: {exc.strerror}"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            reason = getattr(exc, "problem", None) or str(exc)
            problems.append(Problem(where, "", "", f"{line}invalid YAML: {reason}"))
            continue
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            at = where if len(docs) == 1 else f"{where}#{index + 1}"
            problems += _add(doc, at, default_namespace, inv)
    return problems


def _add(doc: Any, where: str, default_namespace: str | None, inv: Inventory) -> list[Problem]:
    if not isinstance(doc, dict):
        return [Problem(where, "", "", "not a Kubernetes object (expected a mapping)")]
    kind = doc.get("kind")
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        out: list[Problem] = []
        for item in doc["items"]:
            out += _add(item, where, default_namespace, inv)
        return out
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not name:
        return [Problem(where, str(kind or "object"), "metadata.name", "is required")]
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    try:
        if kind in ("AIProvider", "AIRoute") and doc.get("apiVersion") != API_VERSION:
            reason = f"must be {API_VERSION} (got {doc.get('apiVersion')!r})"
            return [Problem(where, f"{kind} {name}", "apiVersion", reason)]
        if kind == "AIProvider":
            inv.providers[name] = parse_provider(doc, where)
        elif kind == "AIRoute":
            ns = namespace or default_namespace
            if not ns:
                reason = "is required (or pass --namespace)"
                return [Problem(where, f"AIRoute {name}", "metadata.namespace", reason)]
            route = parse_route(doc, ns, where)
            inv.routes[(ns, name)] = route
        elif kind == "Secret" and doc.get("apiVersion") == "v1":
            ns = namespace or inv.operator_namespace
            inv.secrets[(ns, name)] = parse_secret(doc, ns, where)
        elif kind == "Namespace" and doc.get("apiVersion") == "v1":
            inv.namespaces[name] = dict((meta or {}).get("labels") or {})
    except ManifestError as exc:
        return exc.problems
    return []
