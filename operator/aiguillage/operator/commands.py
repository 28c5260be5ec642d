"""``aiguillage render`` and ``aiguillage explain``: offline, from manifest files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aiguillage.operator.errors import Problem
from aiguillage.operator.inventory import Inventory
from aiguillage.operator.manifests import load
from aiguillage.operator.render import Rendered, render_namespace
from aiguillage.sidecar.config import CONFIG_FILE


def _load(
    files: list[Path], namespace: str | None, operator_namespace: str
) -> tuple[Inventory, list[Problem]]:
    inv = Inventory(operator_namespace=operator_namespace)
    return inv, load(files, namespace, inv)


def _pick_namespace(inv: Inventory, namespace: str | None) -> str | Problem:
    if namespace:
        return namespace
    found = sorted(inv.route_namespaces())
    if len(found) == 1:
        return found[0]
    if not found:
        return Problem("", "", "", "no AIRoute found in the given files")
    return Problem(
        "", "", "", f"routes in several namespaces ({', '.join(found)}): pass --namespace"
    )


def render(
    files: list[Path], namespace: str | None, out: Path | None, operator_namespace: str
) -> int:
    inv, problems = _load(files, namespace, operator_namespace)
    ns = _pick_namespace(inv, namespace)
    if isinstance(ns, Problem):
        if not problems:  # an invalid route is the better explanation for "no route"
            problems.append(ns)
    else:
        rendered = render_namespace(inv, ns)
        problems += route_problems(rendered)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.buffer.write(rendered.config.to_json())
    else:
        write(rendered, out)
        print(f"wrote {out / 'config' / CONFIG_FILE} and {len(rendered.credentials)} credential(s)")
    return 0


def route_problems(rendered: Rendered) -> list[Problem]:
    """Every condition that is not True, as problems (for the CLI's exit status)."""
    problems = []
    for report in rendered.reports.values():
        obj = f"AIRoute {report.route.key}"
        if report.conflict:
            problems.append(Problem("", obj, "", report.conflict))
        for issue in report.issues:
            field, _, reason = issue.message.partition(": ")
            problems.append(Problem("", obj, field, reason))
    return problems


def write(rendered: Rendered, out: Path) -> None:
    """Write the files exactly as the sidecar sees them mounted from ConfigMap and Secret."""
    config_dir = out / "config"
    cred_dir = out / "credentials"
    config_dir.mkdir(parents=True, exist_ok=True)
    cred_dir.mkdir(parents=True, exist_ok=True)
    for stale in cred_dir.iterdir():
        if stale.name not in rendered.credentials:
            stale.unlink()
    for name, value in rendered.credentials.items():
        _atomic_write(cred_dir / name, value, mode=0o600)
    _atomic_write(config_dir / CONFIG_FILE, rendered.config.to_json(), mode=0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def explain(files: list[Path], namespace: str, model: str, operator_namespace: str) -> int:
    from aiguillage.operator.explain import explain_route

    inv, problems = _load(files, namespace, operator_namespace)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    text, ok = explain_route(inv, namespace, model)
    print(text)
    return 0 if ok else 1
