"""Read Kubernetes manifest files into an :class:`Inventory` (for ``aiguillage render``).

Objects of kinds Aiguillage does not read (Deployments, ...) are skipped, so a
whole GitOps directory can be given. Every problem is collected, not just the
first: the user fixes a file once.

Files are untrusted input (see :mod:`aiguillage.operator.yamlfiles` for size, depth and
alias limits). Of the objects read, metadata is checked as the API server would check it
(names are Kubernetes names: a provider name becomes a credential file name), and an
object defined twice (same kind, namespace and name) is an error naming both places:
silently keeping the last one could turn an EU-only route into an unrestricted one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiguillage.operator.api.common import API_VERSION
from aiguillage.operator.errors import ManifestError, Problem
from aiguillage.operator.inventory import (
    Inventory,
    parse_policy,
    parse_provider,
    parse_route,
    parse_secret,
)
from aiguillage.operator.names import name_problem
from aiguillage.operator.yamlfiles import UnreadableFile, load_documents, read_text

SUFFIXES = (".yaml", ".yml", ".json")
# Kinds read, with the apiVersion each must have.
KINDS = {
    "AIProvider": API_VERSION,
    "AIRoute": API_VERSION,
    "AIPolicy": API_VERSION,
    "Secret": "v1",
    "Namespace": "v1",
}


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    """Each file once: given paths as they are, directories walked without following
    symbolic links to directories (a link loop must not walk forever)."""
    seen: set[str] = set()
    for path in paths:
        if path.is_dir():
            found: list[Path] = []
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                found += (Path(folder) / n for n in names if n.endswith(SUFFIXES))
            candidates = sorted(found)
        else:
            candidates = [path]
        for file in candidates:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                yield file


def load(paths: Iterable[Path], default_namespace: str | None, inv: Inventory) -> list[Problem]:
    """Add every object found in ``paths`` to ``inv``; return the problems found."""
    problems: list[Problem] = []
    for path in _files(paths):
        where = str(path)
        try:
            docs = load_documents(read_text(path))
        except OSError as exc:
            problems.append(Problem(where, "", "", f"cannot read: {exc.strerror or exc}"))
            continue
        except UnreadableFile as exc:
            problems.append(Problem(where, "", "", str(exc)))
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
    if kind == "List" and isinstance(doc.get("items"), list):
        out: list[Problem] = []
        for item in doc["items"]:
            out += _add(item, where, default_namespace, inv)
        return out
    if not isinstance(kind, str) or kind not in KINDS:
        return []
    if kind in ("Secret", "Namespace") and doc.get("apiVersion") != KINDS[kind]:
        return []  # someone else's kind of that name
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        return [Problem(where, kind, "metadata", "must be a mapping with a name")]
    name = meta.get("name")
    if name is None or name == "":
        return [Problem(where, kind, "metadata.name", "is required")]
    bad = name_problem(name, label=kind == "Namespace")
    if bad:
        return [Problem(where, kind, "metadata.name", bad)]
    assert isinstance(name, str)
    obj = f"{kind} {name}"
    problems = _meta_problems(meta, where, obj)
    if problems:
        return problems
    if doc.get("apiVersion") != KINDS[kind]:
        reason = f"must be {KINDS[kind]} (got {doc.get('apiVersion')!r})"
        return [Problem(where, obj, "apiVersion", reason)]
    namespace = meta.get("namespace")
    if kind == "AIRoute":
        namespace = namespace or default_namespace
        if not namespace:
            reason = "is required (or pass --namespace)"
            return [Problem(where, obj, "metadata.namespace", reason)]
    elif kind == "Secret":
        namespace = namespace or inv.operator_namespace
    else:
        namespace = ""  # cluster-scoped
    key = (kind, namespace, name)
    first = inv.sources.get(key)
    if first is not None:
        ident = f"{kind} {namespace}/{name}" if namespace else obj
        reason = f"is also defined in {first}: each object may be defined once"
        return [Problem(where, ident, "metadata.name", reason)]
    try:
        if kind == "AIProvider":
            inv.providers[name] = parse_provider(doc, where)
        elif kind == "AIRoute":
            inv.routes[(namespace, name)] = parse_route(doc, namespace, where)
        elif kind == "AIPolicy":
            inv.policies[name] = parse_policy(doc, where)
        elif kind == "Secret":
            inv.secrets[(namespace, name)] = parse_secret(doc, namespace, where)
        else:
            inv.namespaces[name] = dict(meta.get("labels") or {})
    except ManifestError as exc:
        return exc.problems
    inv.sources[key] = where
    return []


def _meta_problems(meta: Mapping[str, Any], where: str, obj: str) -> list[Problem]:
    """Wrong types in metadata, as the API server would refuse them."""
    problems = []
    namespace = meta.get("namespace")
    if namespace is not None:
        bad = name_problem(namespace, label=True)
        if bad:
            problems.append(Problem(where, obj, "metadata.namespace", bad))
    labels = meta.get("labels")
    if labels is not None and not (
        isinstance(labels, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        problems.append(
            Problem(where, obj, "metadata.labels", "must be a mapping of strings to strings")
        )
    generation = meta.get("generation")
    if generation is not None and (not isinstance(generation, int) or isinstance(generation, bool)):
        problems.append(Problem(where, obj, "metadata.generation", "must be an integer"))
    created = meta.get("creationTimestamp")
    if created is not None and not isinstance(created, str):
        problems.append(Problem(where, obj, "metadata.creationTimestamp", "must be a string"))
    return problems
