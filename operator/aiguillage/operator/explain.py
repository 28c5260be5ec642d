"""``aiguillage explain``: the order a route's targets are tried in, every exclusion, and
what the AIPolicies selecting its namespace impose (which policy excludes which target,
limits and budgets, data-protection rules, the shared store).

Uses the same render as the operator, so what it prints is what sidecars get.
Offline and deterministic, for GitOps pull-request checks.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import groupby

from aiguillage.operator.inventory import Inventory
from aiguillage.operator.policies import describe_data_protection, describe_limits
from aiguillage.operator.render import Rendered, render_namespace
from aiguillage.sidecar.config import Route, Strategy, Target
from aiguillage.sidecar.residency import describe


def _order(route: Route) -> list[tuple[Target, str]]:
    """Targets in trying order, each with a note on how the strategy places it."""
    targets = list(route.targets)
    if route.strategy is Strategy.PRIORITY:
        out = []
        tiers = groupby(sorted(targets, key=lambda t: t.priority), key=lambda t: t.priority)
        for tier, members in tiers:
            group = sorted(members, key=lambda t: -t.weight)
            total = sum(t.weight for t in group)
            for t in group:
                share = (
                    f", {100 * t.weight / total:.0f}% of first tries"
                    if len(group) > 1 and total
                    else ""
                )
                out.append((t, f"tier {tier}, weight {t.weight}{share}"))
        return out
    if route.strategy is Strategy.WEIGHTED:
        total = sum(t.weight for t in targets) or 1
        return [
            (t, f"weight {t.weight}, {100 * t.weight / total:.0f}% of first tries")
            for t in sorted(targets, key=lambda t: -t.weight)
        ]
    if route.strategy is Strategy.COST:

        def price(t: Target) -> Decimal | None:
            return (
                None
                if t.pricing is None
                else t.pricing.input_per_million + t.pricing.output_per_million
            )

        ordered = sorted(targets, key=lambda t: (price(t) is None, price(t) or 0, t.priority))
        return [(t, _price_note(t)) for t in ordered]
    return [
        (t, "ordered at run time by observed latency (unmeasured targets first)")
        for t in sorted(targets, key=lambda t: t.priority)
    ]


def _price_note(t: Target) -> str:
    if t.pricing is None:
        return "no pricing"
    p = t.pricing
    return f"EUR {p.input_per_million} in + {p.output_per_million} out per 1M tokens"


def explain_route(inv: Inventory, namespace: str, model: str) -> tuple[str, bool]:
    rendered = render_namespace(inv, namespace)
    report = next((r for r in rendered.reports.values() if r.route.spec.model == model), None)
    if report is None:
        known = sorted({r.route.spec.model for r in rendered.reports.values()})
        return f'no AIRoute in namespace {namespace} serves model "{model}" (known: {known})', False
    lines = [f'AIRoute {report.route.key} serves model "{model}"']
    route = rendered.config.routes.get(model)
    if report.conflict:
        lines.append(f"  not served: {report.conflict}")
    if route is not None:
        res = route.residency
        rule = []
        if res.locations is not None:
            rule.append(f"locations {describe(res.locations)}")
        if res.jurisdictions is not None:
            rule.append(f"jurisdictions {describe(res.jurisdictions)}")
        lines.append(f"  strategy: {route.strategy.value}")
        lines.append(f"  residency: {', '.join(rule) or 'unrestricted'}")
        lines += _policy_lines(rendered, route)
        lines.append("  tried in this order:")
        for n, (t, note) in enumerate(_order(route), 1):
            p = rendered.config.providers[t.provider]
            lines.append(
                f"    {n}. {t.provider}/{t.model} ({note}; location {p.location or '?'}, "
                f"jurisdiction {p.jurisdiction or '?'})"
            )
            lines += [
                f"       audit: AIPolicy {f.policy} (Audit mode) would exclude it: {f.reason}"
                for f in t.policy_audit
            ]
    if report.issues:
        lines.append("  excluded (never contacted):")
        for issue in report.issues:
            lines.append(f"    - {issue.message}")
    if report.policy_conflict:
        lines.append(f"  not served: {report.policy_conflict}")
    elif route is None and not report.conflict:
        lines.append("  not served: no usable target")
    return "\n".join(lines), route is not None


def _policy_lines(rendered: Rendered, route: Route) -> list[str]:
    """The policies in force and what they impose on ``route`` (with its own rules)."""
    policies = rendered.force.policies
    if not policies:
        names = "none select the namespace"
    else:
        names = ", ".join(f"{p.name} ({p.spec.mode.value})" for p in policies)
    lines = [f"  policies: {names}"]
    if route.limits:
        lines.append(f"  limits: {describe_limits(route.limits, with_policy=True)}")
    if route.data_protection is not None:
        lines.append(f"  data protection: {describe_data_protection(route.data_protection)}")
    store = rendered.store
    if store is not None:
        lines.append(
            f"  shared store: {store.config.url} (AIPolicy {store.policy.name}; months in "
            f"{store.config.time_zone})" + (f"; {store.problem}" if store.problem else "")
        )
    elif route.limits:
        lines.append("  shared store: none, so each sidecar counts its limits on its own")
    return lines
