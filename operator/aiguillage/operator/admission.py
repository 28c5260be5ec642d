"""What the validating webhook checks beyond CEL: references, residency, policies, clashes.

Pure functions of the operator's inventory, so the webhook, ``aiguillage render``
and the route's status conditions all word a problem the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiguillage.operator.errors import ManifestError
from aiguillage.operator.inventory import Inventory, parse_policy, parse_route
from aiguillage.operator.policies import InForce, in_force
from aiguillage.operator.providers import INVALID_CREDENTIAL, SECRET_NOT_FOUND
from aiguillage.operator.render import (
    POLICY_COMPLIANT,
    RESIDENCY_COMPLIANT,
    check_target,
    route_rule,
)

# A policy's admission lists at most this many affected targets as warnings.
MAX_WARNINGS = 20


@dataclass(frozen=True)
class Review:
    """What admission says of one object: problems refuse it, warnings only inform."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def route_review(inv: Inventory, namespace: str, body: Mapping[str, Any]) -> Review:
    """Why an AIRoute about to be stored would not be served as written, and what
    Audit-mode policies would forbid in it."""
    try:
        route = parse_route(body, namespace)
    except ManifestError as exc:
        return Review([f"{p.field}: {p.reason}" for p in exc.problems])
    review = Review()
    for other in inv.routes_in(namespace):
        if other.name != route.name and other.spec.model == route.spec.model:
            review.problems.append(
                f'spec.model: "{route.spec.model}" is already served by AIRoute {other.name}'
            )
    force = in_force(inv, namespace)
    try:
        force.data_protection(route)
    except ValueError as exc:
        review.problems.append(f"spec.dataProtection: cannot be combined with the policies: {exc}")
    rule = route_rule(route)
    for index in range(len(route.spec.targets)):
        checked = check_target(inv, route, index, rule, force)
        issue = checked.issue
        # A Secret can be created (or fixed) after the route (GitOps applies in any order):
        # status reports it; unknown providers, models and residency breaches are refused.
        if issue is not None and issue.reason not in (SECRET_NOT_FOUND, INVALID_CREDENTIAL):
            review.problems.append(issue.message)
        review.warnings.extend(
            f"spec.targets[{index}]: {f.reason} (AIPolicy {f.policy} is in Audit mode: "
            "admitted, and recorded whenever it is used)"
            for f in checked.findings
        )
    return review


def route_problems(inv: Inventory, namespace: str, body: Mapping[str, Any]) -> list[str]:
    """Why an AIRoute about to be stored would not be served as written ([] if it would)."""
    return route_review(inv, namespace, body).problems


def policy_review(inv: Inventory, body: Mapping[str, Any]) -> Review:
    """Refuse an AIPolicy the sidecar's models cannot take as written; warn of every target
    of existing routes it would remove (Enforce) or record (Audit)."""
    try:
        policy = parse_policy(body)
    except ManifestError as exc:
        return Review([f"{p.field}: {p.reason}" for p in exc.problems])
    if policy.problems:
        return Review(list(policy.problems))
    review = Review()
    alone = InForce((policy,))
    for route in sorted(inv.routes.values(), key=lambda r: r.key):
        if not policy.selects(inv.namespaces.get(route.namespace, {})):
            continue
        rule = route_rule(route)
        for index in range(len(route.spec.targets)):
            checked = check_target(inv, route, index, rule, alone)
            if checked.issue is not None and checked.issue.condition == POLICY_COMPLIANT:
                review.warnings.append(
                    f"AIRoute {route.key}: {checked.issue.message} "
                    "(this target will no longer be used)"
                )
            for finding in checked.findings:
                review.warnings.append(
                    f"AIRoute {route.key}: spec.targets[{index}]: {finding.reason} "
                    "(Audit mode: recorded whenever it is used)"
                )
    if len(review.warnings) > MAX_WARNINGS:
        more = len(review.warnings) - MAX_WARNINGS
        del review.warnings[MAX_WARNINGS:]
        review.warnings.append(f"... and {more} more")
    return review


def residency_breaches(inv: Inventory, provider: str) -> list[str]:
    """Routes a provider's current spec would put outside their residency or a policy's
    (for warnings)."""
    out = []
    for route in inv.routes.values():
        rule = route_rule(route)
        force = in_force(inv, route.namespace)
        for index, target in enumerate(route.spec.targets):
            if target.provider != provider:
                continue
            issue = check_target(inv, route, index, rule, force).issue
            if issue is not None and issue.condition in (RESIDENCY_COMPLIANT, POLICY_COMPLIANT):
                out.append(f"AIRoute {route.key}: {issue.message}")
    return out
