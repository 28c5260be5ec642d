"""How AIPolicies selecting a namespace combine and reach the compiled config (policies.py,
through render): the most restrictive wins, and adding a policy never widens anything."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiguillage.operator.inventory import Inventory, Secret, parse_policy
from aiguillage.operator.policies import STORE_CREDENTIAL, describe_data_protection
from aiguillage.operator.render import Rendered, render_namespace
from aiguillage.sidecar.config import LimitScope, PolicyMode, StoreFailure
from aiguillage.sidecar.privacy.rules import BUILTIN_CATEGORIES, Action
from tests.operator.test_render import conditions, inventory, provider, route


def policy(name: str, selector: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"namespaceSelector": selector if selector is not None else {}, **spec}
    return {"metadata": {"name": name, "generation": 2}, "spec": body}


def world(
    *policies: dict[str, Any], labels: dict[str, str] | None = None, **routes: Any
) -> Inventory:
    inv = inventory(
        provider("eu", "FR", "FR"),
        provider("de", "DE", "US"),  # in the EU, operated by a US company
        provider("us", "US", "US"),
        routes=[route("chat", "chat", "eu", "de", "us", **routes)],
    )
    inv.namespaces["apps"] = labels if labels is not None else {"data": "sensitive"}
    for body in policies:
        p = parse_policy(body)
        inv.policies[p.name] = p
    return inv


def served(rendered: Rendered) -> list[str]:
    return [t.provider for t in rendered.config.routes["chat"].targets]


EU_ONLY = policy("eu-only", {"matchLabels": {"data": "sensitive"}}, residency={"locations": ["EU"]})


def test_an_enforce_policy_removes_the_target_and_says_which_rule() -> None:
    rendered = render_namespace(world(EU_ONLY), "apps")
    assert served(rendered) == ["eu", "de"]
    assert set(rendered.credentials) == {"eu", "de"}  # the US key never reaches the namespace
    # The sidecar checks the policy's residency again before every attempt.
    assert rendered.config.routes["chat"].residency.locations is not None
    assert "US" not in rendered.config.routes["chat"].residency.locations
    conds = conditions(rendered, "chat")
    assert not conds["PolicyCompliant"].status
    assert conds["PolicyCompliant"].reason == "ForbiddenByPolicy"
    assert conds["PolicyCompliant"].message == (
        'spec.targets[2]: provider "us" is located in US, outside AIPolicy eu-only '
        "residency.locations [EU]"
    )
    assert conds["ResidencyCompliant"].status  # the route's own rule is not the cause
    assert conds["Ready"].reason == "TargetsExcluded"


def test_a_policy_applies_only_to_namespaces_it_selects() -> None:
    rendered = render_namespace(world(EU_ONLY, labels={"data": "public"}), "apps")
    assert served(rendered) == ["eu", "de", "us"]
    conds = conditions(rendered, "chat")
    assert conds["PolicyCompliant"].status
    assert conds["PolicyCompliant"].message == "no AIPolicy selects the namespace"


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": {"data": "sensitive", "team": "support"}}, True),
        ({"matchLabels": {"data": "public"}}, False),
        (
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "support"]}]},
            True,
        ),
        (
            {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["support"]}]},
            False,
        ),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "pci", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "pci", "operator": "Exists"}]}, False),
    ],
)
def test_namespace_selectors_match_like_kubernetes(
    selector: dict[str, Any], selected: bool
) -> None:
    body = policy("p", selector, residency={"locations": ["EU"]})
    inv = world(body, labels={"data": "sensitive", "team": "support"})
    assert inv.policies_for("apps") == ([inv.policies["p"]] if selected else [])


def test_jurisdictions_and_provider_lists_combine_most_restrictive() -> None:
    sovereign = policy("a-sovereign", residency={"jurisdictions": ["EU"]})
    denied = policy("b-deny", providers={"denied": ["eu"]})
    rendered = render_namespace(world(sovereign, denied), "apps")
    assert "chat" not in rendered.config.routes  # eu denied, de and us are US companies
    message = conditions(rendered, "chat")["PolicyCompliant"].message
    assert 'spec.targets[0]: provider "eu" is denied by AIPolicy b-deny providers.denied' in message
    assert (
        'spec.targets[1]: provider "de" is under jurisdiction US, outside AIPolicy a-sovereign '
        "residency.jurisdictions [EU]"
    ) in message
    assert conditions(rendered, "chat")["Ready"].reason == "NotServed"


def test_allowed_lists_intersect() -> None:
    one = policy("one", providers={"allowed": ["eu", "de"]})
    two = policy("two", providers={"allowed": ["de", "us"]})
    rendered = render_namespace(world(one, two), "apps")
    assert served(rendered) == ["de"]
    assert 'provider "eu" is not in AIPolicy two providers.allowed [de, us]' in (
        conditions(rendered, "chat")["PolicyCompliant"].message
    )


def test_audit_mode_keeps_the_target_with_a_finding() -> None:
    audit = policy("eu-audit", mode="Audit", residency={"locations": ["EU"]})
    rendered = render_namespace(world(audit), "apps")
    assert served(rendered) == ["eu", "de", "us"]
    targets = rendered.config.routes["chat"].targets
    assert [f.model_dump() for f in targets[2].policy_audit] == [
        {
            "policy": "eu-audit",
            "reason": 'provider "us" is located in US, outside AIPolicy eu-audit '
            "residency.locations [EU]",
        }
    ]
    assert targets[0].policy_audit == ()
    assert rendered.config.routes["chat"].residency.locations is None  # nothing enforced
    conds = conditions(rendered, "chat")
    assert conds["Ready"].status
    assert not conds["PolicyCompliant"].status
    assert conds["PolicyCompliant"].reason == "AuditFindings"
    assert conds["PolicyCompliant"].message.endswith("(Audit mode: served, recorded)")


def test_limits_are_all_kept_rates_and_budgets_apart() -> None:
    team = policy(
        "team",
        limits=[
            {"per": "namespace", "requestsPerMinute": 600, "budgetEurPerMonth": "500"},
            {"per": "workload", "tokensPerMinute": 100000, "whenStoreUnavailable": "closed"},
        ],
        sharedStore={"url": "redis://redis:6379/0", "whenUnavailable": {"budgets": "open"}},
    )
    audit = policy("watch", mode="Audit", limits=[{"per": "route", "budgetEurPerMonth": "5"}])
    limits = render_namespace(world(team, audit), "apps").config.routes["chat"].limits
    assert [
        (
            lim.policy,
            lim.scope,
            lim.requests_per_minute,
            lim.tokens_per_minute,
            lim.budget_eur_per_month,
            lim.mode,
            lim.when_store_unavailable,
        )
        for lim in limits
    ] == [
        ("team", LimitScope.NAMESPACE, 600, None, None, PolicyMode.ENFORCE, None),
        (
            "team",
            LimitScope.NAMESPACE,
            None,
            None,
            Decimal(500),
            PolicyMode.ENFORCE,
            StoreFailure.OPEN,
        ),
        ("team", LimitScope.WORKLOAD, None, 100000, None, PolicyMode.ENFORCE, StoreFailure.CLOSED),
        ("watch", LimitScope.ROUTE, None, None, Decimal(5), PolicyMode.AUDIT, StoreFailure.OPEN),
    ]


def test_closed_wins_between_store_defaults() -> None:
    opened = policy(
        "a", sharedStore={"url": "redis://r/0", "whenUnavailable": {"rateLimits": "open"}}
    )
    closed = policy(
        "b",
        sharedStore={"url": "redis://s/0", "whenUnavailable": {"rateLimits": "closed"}},
        limits=[{"per": "route", "requestsPerMinute": 5}],
    )
    limits = render_namespace(world(opened, closed), "apps").config.routes["chat"].limits
    assert [lim.when_store_unavailable for lim in limits] == [StoreFailure.CLOSED]


def test_the_shared_store_and_its_password_reach_the_namespace() -> None:
    store = {
        "url": "redis://redis.infra:6379/1",
        "passwordSecretRef": {"name": "redis", "key": "password"},
        "keyPrefix": "prod",
        "timeZone": "Europe/Berlin",
    }
    inv = world(
        policy("b-store", sharedStore=store), policy("c-other", sharedStore={"url": "redis://x/0"})
    )
    inv.secrets[(inv.operator_namespace, "redis")] = Secret(
        inv.operator_namespace, "redis", {"password": b"s3cret\n"}
    )
    rendered = render_namespace(inv, "apps")
    compiled = rendered.config.shared_store
    assert compiled is not None
    assert (compiled.url, compiled.credential, compiled.key_prefix, compiled.time_zone) == (
        "redis://redis.infra:6379/1",
        STORE_CREDENTIAL,
        "prod",
        "Europe/Berlin",
    )  # the first policy by name that names a store
    assert rendered.credentials[STORE_CREDENTIAL] == b"s3cret"
    assert b"s3cret" not in rendered.config_json


def test_a_missing_store_password_is_reported_and_not_named_in_the_config() -> None:
    store = {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "nope", "key": "password"}}
    rendered = render_namespace(world(policy("store", sharedStore=store)), "apps")
    assert rendered.config.shared_store is not None
    assert rendered.config.shared_store.credential is None
    assert STORE_CREDENTIAL not in rendered.credentials
    assert rendered.store is not None
    assert (
        rendered.store.problem == "spec.sharedStore: Secret aiguillage-system/nope does not exist"
    )


def test_data_protection_combines_policies_and_the_route_strictest_wins() -> None:
    gdpr = policy(
        "gdpr",
        dataProtection={
            "rules": [
                {
                    "categories": ["email"],
                    "action": "pseudonymise",
                    "when": {"notJurisdictions": ["EU"]},
                },
                {"categories": ["iban"], "action": "block"},
            ]
        },
    )
    watch = policy(
        "watch",
        mode="Audit",
        dataProtection={"rules": [{"categories": ["phone"], "action": "block"}]},
    )
    inv = world(
        gdpr,
        watch,
        dataProtection={"rules": [{"categories": ["email", "iban"], "action": "audit"}]},
    )
    rules = render_namespace(inv, "apps").config.routes["chat"].data_protection
    assert rules is not None
    assert rules.action_for("email", "US", "US")[0] is Action.PSEUDONYMISE  # type: ignore[index]
    assert rules.action_for("email", "FR", "FR")[0] is Action.AUDIT  # type: ignore[index]
    assert rules.action_for("iban", "FR", "FR")[0] is Action.BLOCK  # type: ignore[index]
    decided = rules.action_for("phone", "FR", "FR")
    assert decided is not None
    assert decided[0] is Action.AUDIT  # an Audit-mode policy never blocks...
    assert decided[1].source == "AIPolicy watch (Audit mode: would block)"  # ...but says so
    assert describe_data_protection(rules) == (
        "block iban; pseudonymise email (notJurisdictions [EU]); audit email, iban, phone"
    )


def test_rules_that_cannot_combine_stop_the_route_not_the_namespace() -> None:
    one = policy(
        "one",
        dataProtection={
            "patterns": [{"name": "staff", "regex": "EMP-[0-9]+"}],
            "rules": [{"categories": ["staff"], "action": "block"}],
        },
    )
    two = policy(
        "two",
        dataProtection={
            "patterns": [{"name": "staff", "regex": "S-[0-9]+"}],
            "rules": [{"categories": ["staff"], "action": "redact"}],
        },
    )
    rendered = render_namespace(world(one, two), "apps")
    assert rendered.config.routes == {}
    conds = conditions(rendered, "chat")
    assert conds["Ready"].reason == "PolicyConflict"
    assert "pattern 'staff' is defined twice, differently" in conds["Ready"].message


def test_an_enforce_policy_the_sidecar_cannot_apply_fails_closed() -> None:
    broken = policy(
        "broken",
        dataProtection={
            "patterns": [{"name": "x", "regex": "(a"}],
            "rules": [{"categories": ["x"], "action": "block"}],
        },
    )
    inv = world(broken)
    assert inv.policies["broken"].problems[0].startswith("spec.dataProtection.patterns[0].regex")
    rendered = render_namespace(inv, "apps")
    assert "chat" not in rendered.config.routes
    assert "AIPolicy broken cannot be applied as written" in (
        conditions(rendered, "chat")["PolicyCompliant"].message
    )
    # The same policy in Audit mode changes nothing (its status says it is not applied).
    audit = policy("broken", mode="Audit", dataProtection=broken["spec"]["dataProtection"])
    assert served(render_namespace(world(audit), "apps")) == ["eu", "de", "us"]


# ----- the property: adding a policy never widens what a route may use ---------------------

COUNTRIES = ["FR", "DE", "US", "EU", "CH"]
policies_st = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(["Enforce", "Audit"]),
        "residency": st.fixed_dictionaries(
            {},
            optional={
                "locations": st.lists(st.sampled_from(COUNTRIES), max_size=3),
                "jurisdictions": st.lists(st.sampled_from(COUNTRIES), max_size=3),
            },
        ),
        "providers": st.fixed_dictionaries(
            {},
            optional={
                "allowed": st.lists(st.sampled_from(["eu", "de", "us"]), max_size=3, unique=True),
                "denied": st.lists(st.sampled_from(["eu", "de", "us"]), max_size=2, unique=True),
            },
        ),
        "limits": st.lists(
            st.fixed_dictionaries(
                {
                    "per": st.sampled_from(["namespace", "route", "workload"]),
                    "requestsPerMinute": st.integers(1, 100),
                },
                optional={"whenStoreUnavailable": st.sampled_from(["open", "closed"])},
            ),
            max_size=2,
        ),
        "dataProtection": st.fixed_dictionaries(
            {
                "rules": st.lists(
                    st.fixed_dictionaries(
                        {
                            "categories": st.lists(
                                st.sampled_from(BUILTIN_CATEGORIES[:3]),
                                min_size=1,
                                max_size=2,
                                unique=True,
                            ),
                            "action": st.sampled_from([a.value for a in Action]),
                        },
                        optional={
                            "when": st.fixed_dictionaries(
                                {"notJurisdictions": st.sampled_from([["EU"], ["US"]])}
                            )
                        },
                    ),
                    max_size=2,
                )
            }
        ),
    },
)


def strictness(rendered: Rendered) -> dict[tuple[str, str], int]:
    """Per (category, target) the strictest action in force, -1 for none."""
    route = rendered.config.routes.get("chat")
    rules = route.data_protection if route else None
    out = {}
    for category in BUILTIN_CATEGORIES[:3]:
        for where in ("FR", "US"):
            found = rules.action_for(category, where, where) if rules else None
            out[(category, where)] = found[0].strictness if found else -1
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(existing=st.lists(policies_st, max_size=2), added=policies_st)
def test_adding_a_policy_never_widens_what_a_route_may_use(
    existing: list[dict[str, Any]], added: dict[str, Any]
) -> None:
    before_inv = world(*(policy(f"p{i}", **spec) for i, spec in enumerate(existing)))
    after_inv = world(
        *(policy(f"p{i}", **spec) for i, spec in enumerate(existing)), policy("added", **added)
    )
    before, after = render_namespace(before_inv, "apps"), render_namespace(after_inv, "apps")
    old = before.config.routes.get("chat")
    new = after.config.routes.get("chat")
    if new is None:
        return  # nothing served: nothing widened
    assert old is not None
    # Targets: never one more.
    assert {t.provider for t in new.targets} <= {t.provider for t in old.targets}
    # Residency: the sidecar's own rule only narrows.
    for dimension in ("locations", "jurisdictions"):
        was, now = getattr(old.residency, dimension), getattr(new.residency, dimension)
        assert was is None or (now is not None and now <= was)
    # Limits: every limit in force before is still in force.
    assert set(old.limits) <= set(new.limits)
    # Audit findings: none disappears from a target still served.
    old_findings = {t.provider: set(t.policy_audit) for t in old.targets}
    for t in new.targets:
        assert old_findings[t.provider] <= set(t.policy_audit)
    # Data protection: no action gets less strict.
    now_strict = strictness(after)
    for key, level in strictness(before).items():
        assert now_strict[key] >= level
