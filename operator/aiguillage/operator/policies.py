"""What the AIPolicies selecting a namespace impose on its routes, combined.

Several policies combine so that the most restrictive wins, and adding a policy can
never widen what a route may use (``tests/operator/test_policies.py`` checks this as a
property):

- residency: the intersection of every Enforce-mode policy's rule with the route's own
  (it is compiled into the route, so the sidecar checks it again before every attempt);
- providers: allowed lists intersect (a provider must be in each), denied lists add up;
- limits: each is kept, as many compiled limits (one for the rates, one for the budget),
  and a request must pass them all; while the shared store is unreachable a limit does
  what it says, else what the policies' ``sharedStore.whenUnavailable`` say (closed wins
  over open), else closed for budgets and open for rate limits;
- data protection: every policy's rules and the route's own are applied together and the
  strictest action wins per category and target (block > redact > pseudonymise > audit;
  see :mod:`aiguillage.sidecar.privacy.rules`), so a route can add rules, never loosen;
- the shared store: the first policy by name that names one.

An Enforce-mode policy removes the targets it forbids from the compiled config. An
Audit-mode policy removes nothing: each target it would have removed carries a
:class:`~aiguillage.sidecar.config.PolicyFinding`, its limits are compiled in Audit mode
and its data-protection actions become ``audit``. An Enforce-mode policy the sidecar's
models cannot take as written (see :class:`~aiguillage.operator.inventory.Policy`)
forbids every target until it is fixed: a guardrail fails closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from itertools import groupby

from aiguillage.operator.inventory import Inventory, Policy, Route
from aiguillage.sidecar import config as cfg
from aiguillage.sidecar.credentials import credential_problem
from aiguillage.sidecar.privacy.rules import DataProtectionRules, Rule
from aiguillage.sidecar.residency import UNRESTRICTED, ResidencyRule, describe

# The file name of the shared store's password in a namespace's credentials: not a
# Kubernetes object name (it has "_"), so no provider's credential file can be called so.
STORE_CREDENTIAL = "shared_store"


def residency_wording(why: str, rule_name: str) -> str:
    """A residency violation ("... outside locations [EU]") naming the rule broken, e.g.
    ``residency`` or ``AIPolicy eu-only residency``."""
    return why.replace("outside locations", f"outside {rule_name}.locations").replace(
        "outside jurisdictions", f"outside {rule_name}.jurisdictions"
    )


def policy_rule(policy: Policy) -> ResidencyRule:
    spec = policy.spec.residency
    if spec is None:
        return UNRESTRICTED
    return ResidencyRule.parse(spec.locations, spec.jurisdictions, policy.source)


@dataclass(frozen=True)
class Verdict:
    """One policy forbids (Enforce) or would forbid (Audit) one target."""

    policy: Policy
    reason: str  # 'provider "x" is located in US, outside AIPolicy eu residency.locations [EU]'


@dataclass(frozen=True)
class Store:
    """The shared store a namespace's sidecars use, as compiled, and where it came from."""

    config: cfg.SharedStore
    policy: Policy
    credential: bytes | None  # the password file's content, if any
    problem: str = ""  # why the password is not copied (the sidecars connect without it)


@dataclass(frozen=True)
class InForce:
    """The policies selecting one namespace, by name, and what they impose together."""

    policies: tuple[Policy, ...]

    @cached_property
    def residency(self) -> ResidencyRule:
        """The intersection of every Enforce-mode policy's residency rule."""
        rule = UNRESTRICTED
        for policy in self.policies:
            if policy.enforced and not policy.problems:
                rule = rule.narrow(policy_rule(policy))
        return rule

    def verdicts(
        self, provider: str, where: str | None, jurisdiction: str | None, who: str, because: str
    ) -> list[Verdict]:
        """Every policy forbidding a target of ``provider`` processing data at ``where``
        and operated under ``jurisdiction``; ``who`` names the target in messages
        ('provider "x"') and ``because`` says how its location is known."""
        out = []
        for policy in self.policies:
            reason = _forbids(policy, provider, where, jurisdiction, who, because)
            if reason:
                out.append(Verdict(policy, reason))
        return out

    @cached_property
    def limits(self) -> tuple[cfg.Limit, ...]:
        """Every policy's limits, rates and budgets apart (each with its own behaviour when
        the store is unreachable)."""
        out: list[cfg.Limit] = []
        for policy in self.policies:
            if policy.problems:
                continue
            for limit in policy.spec.limits:
                common = {"policy": policy.name, "scope": limit.per, "mode": policy.spec.mode}
                if limit.requests_per_minute or limit.tokens_per_minute:
                    out.append(
                        cfg.Limit(
                            **common,
                            requests_per_minute=limit.requests_per_minute,
                            tokens_per_minute=limit.tokens_per_minute,
                            when_store_unavailable=limit.when_store_unavailable
                            or self._store_default(budgets=False),
                        )
                    )
                if limit.budget_eur_per_month is not None:
                    out.append(
                        cfg.Limit(
                            **common,
                            budget_eur_per_month=Decimal(limit.budget_eur_per_month),
                            when_store_unavailable=limit.when_store_unavailable
                            or self._store_default(budgets=True),
                        )
                    )
        return tuple(out)

    def _store_default(self, budgets: bool) -> cfg.StoreFailure | None:
        said = set()
        for policy in self.policies:
            store = policy.spec.shared_store
            if store is None or store.when_unavailable is None or policy.problems:
                continue
            choice = (
                store.when_unavailable.budgets if budgets else store.when_unavailable.rate_limits
            )
            if choice is not None:
                said.add(choice)
        if cfg.StoreFailure.CLOSED in said:
            return cfg.StoreFailure.CLOSED
        return cfg.StoreFailure.OPEN if said else None

    def data_protection(self, route: Route) -> DataProtectionRules | None:
        """The policies' rules and the route's own, combined; raises ValueError when two
        of them define one custom category differently."""
        combined = None
        parts = [p.data_protection for p in self.policies if p.data_protection is not None]
        if route.data_protection is not None:
            parts.append(route.data_protection)
        for rules in parts:
            combined = rules if combined is None else combined.combine(rules)
        return combined

    def shared_store(self, inv: Inventory) -> Store | None:
        policy = next(
            (p for p in self.policies if p.shared_store is not None and not p.problems), None
        )
        if policy is None or policy.shared_store is None:
            return None
        ref = policy.spec.shared_store.password_secret_ref if policy.spec.shared_store else None
        if ref is None:
            return Store(policy.shared_store, policy, None)
        where = f"Secret {inv.operator_namespace}/{ref.name}"
        secret = inv.credential_secret(ref.name)
        value = None if secret is None else secret.data.get(ref.key)
        problem = (
            f"{where} does not exist"
            if secret is None
            else f'{where} has no key "{ref.key}"'
            if not value
            else None
        )
        if value and problem is None:
            bad = credential_problem(value)
            problem = f'{where} key "{ref.key}" {bad}' if bad else None
        if problem is not None or value is None:
            return Store(policy.shared_store, policy, None, f"spec.sharedStore: {problem}")
        compiled = policy.shared_store.model_copy(update={"credential": STORE_CREDENTIAL})
        return Store(compiled, policy, value.strip())


def _forbids(
    policy: Policy,
    provider: str,
    where: str | None,
    jurisdiction: str | None,
    who: str,
    because: str,
) -> str | None:
    if policy.problems:
        if not policy.enforced:
            return None  # Audit mode never refuses; its status says it is not applied
        return (
            f"{policy.source} cannot be applied as written ({policy.problems[0]}): no "
            "target may be used in the namespaces it selects until it is fixed"
        )
    rules = policy.spec.providers
    if rules is not None and provider in rules.denied:
        return f"{who} is denied by {policy.source} providers.denied"
    if rules is not None and rules.allowed is not None and provider not in rules.allowed:
        allowed = ", ".join(rules.allowed)
        return f"{who} is not in {policy.source} providers.allowed [{allowed}]"
    why = policy_rule(policy).violation(where, jurisdiction)
    if why:
        return f"{who} {residency_wording(why, f'{policy.source} residency')}{because}"
    return None


def in_force(inv: Inventory, namespace: str) -> InForce:
    return InForce(tuple(inv.policies_for(namespace)))


# ----- short forms, for status and explain ------------------------------------------------


def describe_residency(policy: Policy) -> str:
    rule = policy_rule(policy)
    parts = []
    if rule.locations is not None:
        parts.append(f"locations {describe(rule.locations)}")
    if rule.jurisdictions is not None:
        parts.append(f"jurisdictions {describe(rule.jurisdictions)}")
    return ", ".join(parts)


def describe_providers(policy: Policy) -> str:
    rules = policy.spec.providers
    if rules is None:
        return ""
    parts = []
    if rules.allowed is not None:
        parts.append(f"only {', '.join(rules.allowed) or '(none)'}")
    if rules.denied:
        parts.append(f"not {', '.join(rules.denied)}")
    return "; ".join(parts)


def describe_limit(limit: cfg.Limit) -> str:
    parts = []
    if limit.requests_per_minute is not None:
        parts.append(f"{limit.requests_per_minute} req/min")
    if limit.tokens_per_minute is not None:
        parts.append(f"{limit.tokens_per_minute} tokens/min")
    if limit.budget_eur_per_month is not None:
        parts.append(f"{limit.budget_eur_per_month} EUR/month")
    return f"{', '.join(parts)} per {limit.scope.value}"


def describe_limits(limits: Iterable[cfg.Limit], with_policy: bool = False) -> str:
    out = []
    for limit in limits:
        text = describe_limit(limit)
        if with_policy:
            mode = ", Audit mode" if limit.mode is cfg.PolicyMode.AUDIT else ""
            text += f" (AIPolicy {limit.policy}{mode})"
        out.append(text)
    return "; ".join(out)


def policy_limits(policy: Policy) -> tuple[cfg.Limit, ...]:
    """One policy's limits as compiled (for its status)."""
    return InForce((policy,)).limits


def describe_data_protection(rules: DataProtectionRules | None) -> str:
    """``block national_id, payment_card; pseudonymise email (notJurisdictions [EU])``."""
    if rules is None or not rules.rules:
        return ""
    out = []

    def key(rule: Rule) -> tuple[int, str]:
        return (-rule.action.strictness, _when(rule))

    for (_, when), group in groupby(sorted(rules.rules, key=key), key=key):
        members = list(group)
        categories = sorted({c for r in members for c in r.categories})
        text = f"{members[0].action.value} {', '.join(categories)}"
        out.append(f"{text} ({when})" if when else text)
    return "; ".join(out)


def _when(rule: Rule) -> str:
    if rule.when is None:
        return ""
    parts = []
    for name in ("locations", "not_locations", "jurisdictions", "not_jurisdictions"):
        value = getattr(rule.when, name)
        if value is not None:
            camel = name.replace("_l", "L").replace("_j", "J")
            parts.append(f"{camel} {describe(value)}")
    return ", ".join(parts)
