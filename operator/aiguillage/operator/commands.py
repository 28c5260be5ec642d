"""``aiguillage render`` and ``aiguillage explain``: offline, from manifest files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aiguillage.operator.errors import Problem
from aiguillage.operator.inventory import Inventory
from aiguillage.operator.manifests import load
from aiguillage.operator.names import is_dns_subdomain
from aiguillage.operator.policies import STORE_CREDENTIAL
from aiguillage.operator.providers import admission_problems
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
        for warning in policy_warnings(inv, rendered):
            print(f"warning: {warning}", file=sys.stderr)
    problems += provider_problems(inv) + policy_problems(inv)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.buffer.write(rendered.config_json)
    else:
        try:
            write(rendered, out)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"error: {out}: cannot write: {reason}", file=sys.stderr)
            return 1
        print(f"wrote {out / 'config' / CONFIG_FILE} and {len(rendered.credentials)} credential(s)")
    return 0


def route_problems(rendered: Rendered) -> list[Problem]:
    """Every condition that is not True, as problems (for the CLI's exit status)."""
    problems = []
    for report in rendered.reports.values():
        obj = f"AIRoute {report.route.key}"
        if report.conflict:
            problems.append(Problem("", obj, "", report.conflict))
        if report.too_large:
            problems.append(Problem("", obj, "", report.too_large))
        if report.policy_conflict:
            problems.append(Problem("", obj, "", report.policy_conflict))
        for issue in report.issues:
            field, _, reason = issue.message.partition(": ")
            problems.append(Problem("", obj, field, reason))
    return problems


def policy_problems(inv: Inventory) -> list[Problem]:
    """What the admission webhook would refuse in the policies read (what the sidecar could
    not apply), one problem per field."""
    problems = []
    for name, policy in sorted(inv.policies.items()):
        where = inv.sources.get(("AIPolicy", "", name), "")
        for message in policy.problems:
            field, _, reason = message.partition(": ")
            problems.append(Problem(where, policy.source, field, reason))
    return problems


def policy_warnings(inv: Inventory, rendered: Rendered) -> list[str]:
    """What Audit-mode policies would forbid (served all the same), and policies matched
    against a namespace whose labels the files do not give."""
    out = []
    if inv.policies and rendered.namespace not in inv.namespaces:
        out.append(
            f"Namespace {rendered.namespace} is not in the given files: AIPolicies are "
            "matched against a namespace without labels"
        )
    if rendered.store is not None and rendered.store.problem:
        out.append(f"{rendered.store.policy.source}: {rendered.store.problem}")
    for report in rendered.reports.values():
        for index, finding in report.findings:
            out.append(
                f"AIRoute {report.route.key}: spec.targets[{index}]: {finding.reason} "
                "(Audit mode: served, recorded)"
            )
    return out


def provider_problems(inv: Inventory) -> list[Problem]:
    """What the admission webhook would refuse in the providers read (options the sidecar
    could not use, a location the endpoint contradicts), one problem per field."""
    problems = []
    for name, provider in sorted(inv.providers.items()):
        where = inv.sources.get(("AIProvider", "", name), "")
        for message in admission_problems(provider.spec):
            field, _, reason = message.partition(": ")
            problems.append(Problem(where, f"AIProvider {name}", field, reason))
    return problems


def write(rendered: Rendered, out: Path) -> None:
    """Write the files exactly as the sidecar sees them mounted from ConfigMap and Secret.

    Credential file names are provider names, validated as Kubernetes names when read; each
    path is checked again to stay inside ``out`` before anything is written.
    """
    config_dir = out / "config"
    cred_dir = out / "credentials"
    config_dir.mkdir(parents=True, exist_ok=True)
    cred_dir.mkdir(parents=True, exist_ok=True)
    targets = {name: _inside(cred_dir, name) for name in rendered.credentials}
    for stale in cred_dir.iterdir():
        if stale.name not in rendered.credentials and stale.is_file():
            stale.unlink()
    for name, value in rendered.credentials.items():
        _atomic_write(targets[name], value, mode=0o600)
    _atomic_write(config_dir / CONFIG_FILE, rendered.config_json, mode=0o644)


def _inside(folder: Path, name: str) -> Path:
    """``folder/name``, refusing any name that is not one plain file name inside it."""
    path = folder / name
    if (
        not (is_dns_subdomain(name) or name == STORE_CREDENTIAL)
        or path.parent != folder
        or not path.resolve().is_relative_to(folder.resolve())
    ):
        raise ValueError(f"refusing to write credential file {name!r} outside {folder}")
    return path


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
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
