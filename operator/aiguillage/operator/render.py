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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from aiguillage.operator import sizing
from aiguillage.operator.api.durations import parse_duration
from aiguillage.operator.api.provider import AIProviderSpec
from aiguillage.operator.inventory import Inventory, Route
from aiguillage.operator.providers import credential_finding, location, target_location
from aiguillage.sidecar import config as cfg
from aiguillage.sidecar.processing import endpoint_evidence, processing_location
from aiguillage.sidecar.residency import UNRESTRICTED, ResidencyRule, describe

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
RESIDENCY_COMPLIANT = "ResidencyCompliant"
READY = "Ready"


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
    condition: str  # RESOLVED_REFS or RESIDENCY_COMPLIANT
    reason: str
    message: str


@dataclass
class RouteReport:
    route: Route
    served: bool = False
    conflict: str = ""  # message when another route already claims the model name
    too_large: str = ""  # message when the namespace's output has no room left for it
    issues: list[TargetIssue] = field(default_factory=list)

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
        total = len(self.route.spec.targets)
        usable = total - len({i.index for i in self.issues})
        if self.too_large:
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
        return [accepted, refs, residency, ready]


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


def route_rule(route: Route) -> ResidencyRule:
    spec = route.spec.residency
    if spec is None:
        return UNRESTRICTED
    return ResidencyRule.parse(spec.locations, spec.jurisdictions, f"AIRoute {route.key}")


def check_target(
    inv: Inventory, route: Route, index: int, rule: ResidencyRule
) -> TargetIssue | None:
    """Whether target ``index`` of ``route`` may be used, and if not why."""
    target = route.spec.targets[index]
    at = f"spec.targets[{index}]"
    provider = inv.providers.get(target.provider)
    if provider is None:
        return TargetIssue(
            index,
            RESOLVED_REFS,
            "ProviderNotFound",
            f'{at}: provider "{target.provider}" does not exist',
        )
    spec = provider.spec
    if spec.model(target.model) is None:
        served = ", ".join(m.name for m in spec.models)
        return TargetIssue(
            index,
            RESOLVED_REFS,
            "ModelNotFound",
            f'{at}: provider "{target.provider}" has no model "{target.model}" '
            f"(it serves: {served})",
        )
    if provider.unusable:
        return TargetIssue(
            index,
            RESOLVED_REFS,
            "ProviderInvalid",
            f'{at}: provider "{target.provider}" is not usable: ' + "; ".join(provider.unusable),
        )
    secret = credential_finding(inv, spec)
    if secret:
        return TargetIssue(
            index,
            RESOLVED_REFS,
            secret.reason,
            f'{at}: provider "{target.provider}": {secret.message}',
        )
    where = target_location(spec, target.model)
    why = rule.violation(where, spec.residency.jurisdiction)
    if why:
        who = f'provider "{target.provider}"'
        because = ""
        if processing_location(spec.api.value, spec.endpoint, spec.options, target.model):
            who += f' with model "{target.model}"'  # the model id decides, not the provider
        elif where != spec.residency.location:
            evidence = endpoint_evidence(spec.api.value, spec.endpoint, spec.options)
            because = f" ({evidence.source})" if evidence else ""
        return TargetIssue(
            index,
            RESIDENCY_COMPLIANT,
            "OutsideResidency",
            f"{at}: {who} {_residency_wording(why, rule)}{because}",
        )
    return None


def _residency_wording(why: str, rule: ResidencyRule) -> str:
    return why.replace("outside locations", "outside residency.locations").replace(
        "outside jurisdictions", "outside residency.jurisdictions"
    )


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

    for route in inv.routes_in(namespace):
        report = reports[route.name] = RouteReport(route)
        owner = claimed.get(route.spec.model)
        if owner is not None:
            report.conflict = (
                f'spec.model: "{route.spec.model}" is already served by AIRoute {owner.name}'
            )
            continue
        claimed[route.spec.model] = route
        compiled = _compile(inv, route, report)
        if compiled is not None:
            served.append(compiled)
            report.served = True

    config, credentials, config_json = _assemble(namespace, served)
    if sizing.config_size(config_json) > budget or sizing.secret_size(credentials) > budget:
        served = _fit(namespace, served, budget)
        config, credentials, config_json = _assemble(namespace, served)
        while served and sizing.config_size(config_json) > budget:  # estimates fell short
            dropped = served.pop()
            dropped.report.served = False
            dropped.report.too_large = sizing.too_large(
                "compiled config", sizing.config_size(config_json), budget, namespace
            )
            config, credentials, config_json = _assemble(namespace, served)
    return Rendered(namespace, config, credentials, reports, config_json)


def _compile(inv: Inventory, route: Route, report: RouteReport) -> _Served | None:
    rule = route_rule(route)
    targets: list[cfg.Target] = []
    providers: dict[str, cfg.Provider] = {}
    credentials: dict[str, bytes] = {}
    for index, target in enumerate(route.spec.targets):
        issue = check_target(inv, route, index, rule)
        if issue:
            report.issues.append(issue)
            continue
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
            )
        )
    if not targets:
        return None
    return _Served(report, _compile_route(route, rule, tuple(targets)), providers, credentials)


def _assemble(
    namespace: str, served: list[_Served]
) -> tuple[cfg.SidecarConfig, dict[str, bytes], bytes]:
    providers: dict[str, cfg.Provider] = {}
    credentials: dict[str, bytes] = {}
    for one in served:
        providers.update(one.providers)
        credentials.update(one.credentials)
    routes = {one.report.route.spec.model: one.route for one in served}
    config = cfg.SidecarConfig(namespace=namespace, providers=providers, routes=routes).sealed()
    return config, credentials, config.to_json()


def _fit(namespace: str, served: list[_Served], budget: int) -> list[_Served]:
    """The oldest routes that fit in ``budget``; the others are marked as left out."""
    empty_json = _assemble(namespace, [])[2]
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
