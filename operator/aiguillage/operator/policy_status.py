"""An AIPolicy's status: whether it applies as written, what it selects, what it enforces.

Computed from the inventory alone (like every status), by the reconciler after each batch
of renders; the short forms also feed ``kubectl get aipolicy``'s columns.
"""

from __future__ import annotations

from typing import Any

from aiguillage.operator.inventory import Inventory, Policy
from aiguillage.operator.policies import (
    describe_data_protection,
    describe_limits,
    describe_providers,
    describe_residency,
    in_force,
    policy_limits,
)
from aiguillage.operator.render import Condition
from aiguillage.sidecar.config import PolicyMode


def policy_status(inv: Inventory, policy: Policy) -> tuple[list[Condition], dict[str, Any]]:
    """The conditions (Accepted, Ready) and the other status fields of ``policy``."""
    selected = sorted(ns for ns, labels in inv.namespaces.items() if policy.selects(labels))
    route_namespaces = inv.route_namespaces()
    with_routes = [ns for ns in selected if ns in route_namespaces]
    chosen = set(selected)
    routes = sum(1 for ns, _ in inv.routes if ns in chosen)
    fields = {
        "selector": policy.spec.namespace_selector.text(),
        "selectedNamespaces": len(selected),
        "matchedRoutes": routes,
        "residency": describe_residency(policy),
        "providers": describe_providers(policy),
        "limits": describe_limits(policy_limits(policy)),
        "dataProtection": describe_data_protection(policy.data_protection),
    }
    if policy.problems:
        effect = (
            "every target in the namespaces it selects is forbidden until it is fixed"
            if policy.spec.mode is PolicyMode.ENFORCE
            else "nothing of it is applied (Audit mode) until it is fixed"
        )
        message = "; ".join(policy.problems) + f"; {effect}"
        return [
            Condition("Accepted", False, "InvalidSpec", message),
            Condition("Ready", False, "InvalidSpec", message),
        ], fields
    accepted = Condition("Accepted", True, "Accepted", "the sidecars can apply it as written")
    problem = _store_problem(inv, policy, with_routes)
    if problem is not None:
        return [accepted, Condition("Ready", False, *problem)], fields
    mode = "recorded only (Audit mode)" if policy.spec.mode is PolicyMode.AUDIT else "enforced"
    ready = Condition(
        "Ready",
        True,
        "Applied",
        f"{mode} in {len(selected)} namespace(s), {routes} route(s)",
    )
    return [accepted, ready], fields


def _store_problem(inv: Inventory, policy: Policy, namespaces: list[str]) -> tuple[str, str] | None:
    """Why this policy's shared store is not used as written, as (reason, message)."""
    if policy.shared_store is None:
        return None
    others: dict[str, list[str]] = {}
    for ns in namespaces:
        store = in_force(inv, ns).shared_store(inv)
        if store is None:
            continue
        if store.policy.name != policy.name:
            others.setdefault(store.policy.name, []).append(ns)
        elif store.problem:
            return "StoreCredentialsNotResolved", (
                f"{store.problem}; the sidecars connect to the shared store without a password"
            )
    if others:
        used = "; ".join(f"AIPolicy {o} in {', '.join(n)}" for o, n in sorted(others.items()))
        return "SharedStoreOverridden", (
            f"spec.sharedStore is not used where a policy first by name names one: {used}"
        )
    return None
