"""Compile one namespace's routes into the sidecar's config and credentials.

This is the single code path behind the operator's ConfigMap/Secret and
``aiguillage render``. It is a pure function of an :class:`Inventory`: it never
talks to the API server, so it is idempotent and cheap to re-run on any change.

A problem in one route never costs another route anything. Within a route, a
target whose provider, model or Secret cannot be resolved, whose provider the
sidecar could not use (see :mod:`aiguillage.operator.providers`), or which is
outside the route's residency where it really processes data, is left out of the
compiled config (so it can never be contacted) and reported; the route is served
by its remaining targets, or not at all if none remain. Routes that would make the
namespace's output too large for a ConfigMap are left out newest first (see
:mod:`aiguillage.operator.sizing`). Every such decision becomes a status condition.

The AIPolicies selecting the namespace (see :mod:`aiguillage.operator.policies`) are
applied here too: a target an Enforce-mode policy forbids is left out like one outside
the route's residency (``PolicyCompliant=False``, naming the policy and its rule), one an
Audit-mode policy would forbid is compiled with the finding, and every route carries the
policies' limits, their data-protection rules combined with its own, and the namespace's
shared store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from aiguillage.operator import sizing
from aiguillage.operator.api.durations import parse_duration
from aiguillage.operator.api.provider import AIProviderSpec
from aiguillage.operator.inventory import Inventory, Route
from aiguillage.operator.policies import (
    STORE_CREDENTIAL,
    InForce,
    Store,
    in_force,
    residency_wording,
)
from aiguillage.operator.providers import credential_finding, location, target_location
from aiguillage.sidecar import config as cfg
from aiguillage.sidecar.privacy.rules import DataProtectionRules
from aiguillage.sidecar.processing import endpoint_evidence, processing_location
from aiguillage.sidecar.residency import UNRESTRICTED, ResidencyRule, describe

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
RESIDENCY_COMPLIANT = "ResidencyCompliant"
POLICY_COMPLIANT = "PolicyCompliant"
READY = "Ready"
FORBIDDEN_BY_POLICY = "ForbiddenByPolicy"
NO_POLICY = InForce(())


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class TargetIssue:
    """Why one target of a route is left out."""

    index: int
    condition: str  # RESOLVED_REFS, RESIDENCY_COMPLIANT or POLICY_COMPLIANT
    reason: str
    message: str


@dataclass(frozen=True)
class TargetCheck:
    """What one target's checks found: why it is left out (None: it is used), and what
    Audit-mode policies say they would have forbidden."""

    issue: TargetIssue | None
    findings: tuple[cfg.PolicyFinding, ...] = ()


@dataclass
class RouteReport:
    route: Route
    served: bool = False
    conflict: str = ""  # message when another route already claims the model name
    too_large: str = ""  # message when the namespace's output has no room left for it
    policy_conflict: str = ""  # message when the policies' rules cannot be combined
    issues: list[TargetIssue] = field(default_factory=list)
    # Audit-mode findings on targets that are served, as (target index, finding).
    findings: list[tuple[int, cfg.PolicyFinding]] = field(default_factory=list)
    force: InForce = NO_POLICY  # the policies selecting the route's namespace
    data_protection: DataProtectionRules | None = None  # in force, combined

    def conditions(self) -> list[Condition]:
        def first(kind: str, ok_reason: str, ok_message: str) -> Condition:
            mine = [i for i in self.issues if i.condition == kind]
            if not mine:
                return Condition(kind, True, ok_reason, ok_message)
            return Condition(kind, False, mine[0].reason, "; ".join(i.message for i in mine))

        accepted = (
            Condition(ACCEPTED, False, "ModelConflict", self.conflict)
            if self.conflict
            else Condition(ACCEPTED, True, "Accepted", "route is valid")
        )
        refs = first(RESOLVED_REFS, "Resolved", "all providers, models and Secrets resolved")
        residency = first(
            RESIDENCY_COMPLIANT, "Compliant", "all targets comply with the route's residency"
        )
        policy = self._policy_condition(first)
        total = len(self.route.spec.targets)
        usable = total - len({i.index for i in self.issues})
        if self.policy_conflict:
            ready = Condition(READY, False, "PolicyConflict", self.policy_conflict)
        elif self.too_large:
            ready = Condition(READY, False, "ConfigTooLarge", self.too_large)
        elif not self.served:
            ready = Condition(READY, False, "NotServed", _not_served(self, accepted))
        elif usable < total:
            ready = Condition(
                READY,
                False,
                "TargetsExcluded",
                f"serving {usable} of {total} targets; the others are never contacted",
            )
        else:
            ready = Condition(READY, True, "Serving", f"serving all {total} targets")
        return [accepted, refs, residency, policy, ready]

    def _policy_condition(self, first: Callable[[str, str, str], Condition]) -> Condition:
        if self.policy_conflict:
            return Condition(POLICY_COMPLIANT, False, "PolicyConflict", self.policy_conflict)
        names = ", ".join(p.name for p in self.force.policies)
        ok = f"complies with AIPolicy {names}" if names else "no AIPolicy selects the namespace"
        enforced = first(POLICY_COMPLIANT, "Compliant", ok)
        if not enforced.status or not self.findings:
            return enforced
        message = "; ".join(
            f"spec.targets[{i}]: {f.reason} (Audit mode: served, recorded)"
            for i, f in self.findings
        )
        return Condition(POLICY_COMPLIANT, False, "AuditFindings", message)


def _not_served(report: RouteReport, accepted: Condition) -> str:
    if not accepted.status:
        return accepted.message
    return "no usable target: " + "; ".join(i.message for i in report.issues)


@dataclass
class Rendered:
    namespace: str
    config: cfg.SidecarConfig
    credentials: dict[str, bytes]
    reports: dict[str, RouteReport]  # by route name
    config_json: bytes = b""  # the config file's bytes, as written
    force: InForce = NO_POLICY  # the policies selecting the namespace
    store: Store | None = None  # its shared store, if a policy names one


def route_rule(route: Route) -> ResidencyRule:
    spec = route.spec.residency
    if spec is None:
        return UNRESTRICTED
    return ResidencyRule.parse(spec.locations, spec.jurisdictions, f"AIRoute {route.key}")


def check_target(
    inv: Inventory, route: Route, index: int, rule: ResidencyRule, force: InForce = NO_POLICY
) -> TargetCheck:
    """Whether target ``index`` of ``route`` may be used under the route's residency
    ``rule`` and the policies in ``force``, and if not why."""
    target = route.spec.targets[index]
    at = f"spec.targets[{index}]"
    provider = inv.providers.get(target.provider)
    if provider is None:
        return _left_out(
            index,
            RESOLVED_REFS,
            "ProviderNotFound",
            f'{at}: provider "{target.provider}" does not exist',
        )
    spec = provider.spec
    if spec.model(target.model) is None:
        served = ", ".join(m.name for m in spec.models)
        return _left_out(
            index,
            RESOLVED_REFS,
            "ModelNotFound",
            f'{at}: provider "{target.provider}" has no model "{target.model}" '
            f"(it serves: {served})",
        )
    if provider.unusable:
        return _left_out(
            index,
            RESOLVED_REFS,
            "ProviderInvalid",
            f'{at}: provider "{target.provider}" is not usable: ' + "; ".join(provider.unusable),
        )
    where = target_location(spec, target.model)
    jurisdiction = spec.residency.jurisdiction
    who = f'provider "{target.provider}"'
    because = ""
    if processing_location(spec.api.value, spec.endpoint, spec.options, target.model):
        who += f' with model "{target.model}"'  # the model id decides, not the provider
    elif where != spec.residency.location:
        evidence = endpoint_evidence(spec.api.value, spec.endpoint, spec.options)
        because = f" ({evidence.source})" if evidence else ""
    why = rule.violation(where, jurisdiction)
    if why:
        message = f"{at}: {who} {residency_wording(why, 'residency')}{because}"
        return _left_out(index, RESIDENCY_COMPLIANT, "OutsideResidency", message)
    verdicts = force.verdicts(target.provider, where, jurisdiction, who, because)
    enforced = [v.reason for v in verdicts if v.policy.enforced]
    if enforced:
        message = f"{at}: " + "; ".join(enforced)
        return _left_out(index, POLICY_COMPLIANT, FORBIDDEN_BY_POLICY, message)
    # After residency and policies: admission lets a missing or invalid key pass (GitOps may
    # fix it later), so it must not hide a breach that admission refuses.
    secret = credential_finding(inv, spec)
    if secret:
        return _left_out(
            index,
            RESOLVED_REFS,
            secret.reason,
            f'{at}: provider "{target.provider}": {secret.message}',
        )
    return TargetCheck(None, tuple(cfg.PolicyFinding(policy=v.policy.name, reason=v.reason)
                                   for v in verdicts))  # fmt: skip


def _left_out(index: int, condition: str, reason: str, message: str) -> TargetCheck:
    return TargetCheck(TargetIssue(index, condition, reason, message))


@dataclass
class _Served:
    """One route as compiled, with the providers and credentials it needs."""

    report: RouteReport
    route: cfg.Route
    providers: dict[str, cfg.Provider]
    credentials: dict[str, bytes]


def render_namespace(inv: Inventory, namespace: str, budget: int = sizing.BUDGET) -> Rendered:
    """The namespace's config and credentials; ``budget`` bounds each one's size in bytes."""
    reports: dict[str, RouteReport] = {}
    claimed: dict[str, Route] = {}
    served: list[_Served] = []
    force = in_force(inv, namespace)
    store = force.shared_store(inv)

    for route in inv.routes_in(namespace):
        report = reports[route.name] = RouteReport(route, force=force)
        owner = claimed.get(route.spec.model)
        if owner is not None:
            report.conflict = (
                f'spec.model: "{route.spec.model}" is already served by AIRoute {owner.name}'
            )
            continue
        claimed[route.spec.model] = route
        compiled = _compile(inv, route, report, force)
        if compiled is not None:
            served.append(compiled)
            report.served = True

    config, credentials, config_json = _assemble(namespace, served, store)
    if sizing.config_size(config_json) > budget or sizing.secret_size(credentials) > budget:
        served = _fit(namespace, served, budget, store)
        config, credentials, config_json = _assemble(namespace, served, store)
        while served and sizing.config_size(config_json) > budget:  # estimates fell short
            dropped = served.pop()
            dropped.report.served = False
            dropped.report.too_large = sizing.too_large(
                "compiled config", sizing.config_size(config_json), budget, namespace
            )
            config, credentials, config_json = _assemble(namespace, served, store)
    return Rendered(namespace, config, credentials, reports, config_json, force, store)


def _compile(inv: Inventory, route: Route, report: RouteReport, force: InForce) -> _Served | None:
    rule = route_rule(route)
    try:
        report.data_protection = force.data_protection(route)
    except ValueError as exc:
        names = ", ".join(p.name for p in force.policies)
        report.policy_conflict = (
            f"the data-protection rules of AIPolicy {names} and of this route cannot be "
            f"combined: {exc}; the route is not served until they agree"
        )
        return None
    targets: list[cfg.Target] = []
    providers: dict[str, cfg.Provider] = {}
    credentials: dict[str, bytes] = {}
    for index, target in enumerate(route.spec.targets):
        checked = check_target(inv, route, index, rule, force)
        if checked.issue:
            report.issues.append(checked.issue)
            continue
        report.findings += [(index, f) for f in checked.findings]
        provider = inv.providers[target.provider]
        providers[target.provider] = _compile_provider(provider.spec, target.provider)
        _copy_credential(inv, provider.spec, target.provider, credentials)
        pricing = provider.spec.model(target.model)
        targets.append(
            cfg.Target(
                provider=target.provider,
                model=target.model,
                priority=target.priority,
                weight=target.weight,
                location=processing_location(
                    provider.spec.api.value,
                    provider.spec.endpoint,
                    provider.spec.options,
                    target.model,
                ),
                pricing=_pricing(pricing.pricing.input(), pricing.pricing.output())
                if pricing and pricing.pricing
                else None,
                policy_audit=checked.findings,
            )
        )
    if not targets:
        return None
    compiled = _compile_route(route, rule.narrow(force.residency), tuple(targets)).model_copy(
        update={"limits": force.limits, "data_protection": report.data_protection}
    )
    return _Served(report, compiled, providers, credentials)


def _assemble(
    namespace: str, served: list[_Served], store: Store | None
) -> tuple[cfg.SidecarConfig, dict[str, bytes], bytes]:
    providers: dict[str, cfg.Provider] = {}
    credentials: dict[str, bytes] = {}
    for one in served:
        providers.update(one.providers)
        credentials.update(one.credentials)
    if store is not None and store.credential is not None:
        credentials[STORE_CREDENTIAL] = store.credential
    routes = {one.report.route.spec.model: one.route for one in served}
    config = cfg.SidecarConfig(
        namespace=namespace,
        providers=providers,
        routes=routes,
        shared_store=store.config if store is not None else None,
    ).sealed()
    return config, credentials, config.to_json()


def _fit(namespace: str, served: list[_Served], budget: int, store: Store | None) -> list[_Served]:
    """The oldest routes that fit in ``budget``; the others are marked as left out."""
    empty_json = _assemble(namespace, [], store)[2]
    size, secret = sizing.config_size(empty_json), 0
    providers: set[str] = set()
    kept = []
    for one in served:
        new = {n: p for n, p in one.providers.items() if n not in providers}
        cost = sizing.entry_size(one.report.route.spec.model, _json(one.route), 2) + sum(
            sizing.entry_size(n, _json(p), 2) for n, p in new.items()
        )
        secret_cost = sizing.secret_size({n: v for n, v in one.credentials.items() if n in new})
        if size + cost > budget:
            one.report.served = False
            one.report.too_large = sizing.too_large(
                "compiled config", size + cost, budget, namespace
            )
        elif secret + secret_cost > budget:
            one.report.served = False
            one.report.too_large = sizing.too_large(
                "credentials Secret", secret + secret_cost, budget, namespace
            )
        else:
            kept.append(one)
            size += cost
            secret += secret_cost
            providers.update(new)
    return kept


def _json(model: cfg.Route | cfg.Provider) -> object:
    return model.model_dump(mode="json", by_alias=True)


def _pricing(inp: Decimal, out: Decimal) -> cfg.Pricing:
    return cfg.Pricing(input_per_million=inp, output_per_million=out)


def _compile_provider(spec: AIProviderSpec, name: str) -> cfg.Provider:
    return cfg.Provider(
        api=spec.api.value,
        endpoint=spec.endpoint,
        location=location(spec),
        jurisdiction=spec.residency.jurisdiction,
        region=spec.residency.region,
        credential=name if spec.auth.secret_name() else None,
        options=dict(spec.options),
    )


def _copy_credential(
    inv: Inventory, spec: AIProviderSpec, name: str, into: dict[str, bytes]
) -> None:
    secret_name = spec.auth.secret_name()
    if secret_name is None:
        return
    secret = inv.credential_secret(secret_name)
    assert secret is not None  # checked by check_target
    made = spec.auth.credential(secret.data)
    assert isinstance(made, bytes)
    into[name] = made


def _compile_route(route: Route, rule: ResidencyRule, targets: tuple[cfg.Target, ...]) -> cfg.Route:
    spec = route.spec
    return cfg.Route(
        name=route.name,
        generation=route.generation,
        strategy=spec.strategy,
        residency=cfg.Residency(locations=rule.locations, jurisdictions=rule.jurisdictions),
        targets=targets,
        retry=cfg.Retry(
            attempts=spec.retry.attempts,
            backoff_base=parse_duration(spec.retry.backoff.base),
            backoff_max=parse_duration(spec.retry.backoff.max),
        ),
        timeouts=cfg.Timeouts(
            connect=parse_duration(spec.timeouts.connect),
            first_token=parse_duration(spec.timeouts.first_token),
            stream_idle=parse_duration(spec.timeouts.stream_idle),
            total=parse_duration(spec.timeouts.total),
        ),
        circuit_breaker=cfg.CircuitBreaker(
            consecutive_failures=spec.circuit_breaker.consecutive_failures,
            cooldown=parse_duration(spec.circuit_breaker.cooldown),
        ),
        size_limits=cfg.SizeLimits(
            max_response_bytes=spec.size_limits.max_response_bytes,
            max_event_bytes=spec.size_limits.max_event_bytes,
        ),
    )


__all__ = ["Rendered", "RouteReport", "check_target", "describe", "render_namespace"]
