"""What the validating webhook checks beyond CEL: references, residency, name clashes.

Pure functions of the operator's inventory, so the webhook, ``aiguillage render``
and the route's status conditions all word a problem the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiguillage.operator.errors import ManifestError
from aiguillage.operator.inventory import Inventory, parse_route
from aiguillage.operator.providers import INVALID_CREDENTIAL, SECRET_NOT_FOUND
from aiguillage.operator.render import RESIDENCY_COMPLIANT, check_target, route_rule


def route_problems(inv: Inventory, namespace: str, body: Mapping[str, Any]) -> list[str]:
    """Why an AIRoute about to be stored would not be served as written ([] if it would)."""
    try:
        route = parse_route(body, namespace)
    except ManifestError as exc:
        return [f"{p.field}: {p.reason}" for p in exc.problems]
    problems = []
    for other in inv.routes_in(namespace):
        if other.name != route.name and other.spec.model == route.spec.model:
            problems.append(
                f'spec.model: "{route.spec.model}" is already served by AIRoute {other.name}'
            )
    rule = route_rule(route)
    for index in range(len(route.spec.targets)):
        issue = check_target(inv, route, index, rule)
        # A Secret can be created (or fixed) after the route (GitOps applies in any order):
        # status reports it; unknown providers, models and residency breaches are refused.
        if issue is not None and issue.reason not in (SECRET_NOT_FOUND, INVALID_CREDENTIAL):
            problems.append(issue.message)
    return problems


def residency_breaches(inv: Inventory, provider: str) -> list[str]:
    """Routes a provider's current spec would put outside their residency (for warnings)."""
    out = []
    for route in inv.routes.values():
        rule = route_rule(route)
        for index, target in enumerate(route.spec.targets):
            if target.provider != provider:
                continue
            issue = check_target(inv, route, index, rule)
            if issue is not None and issue.condition == RESIDENCY_COMPLIANT:
                out.append(f"AIRoute {route.key}: {issue.message}")
    return out
