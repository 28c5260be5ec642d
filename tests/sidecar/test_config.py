"""The compiled config model (``config.py``): wire names, validation and the content hash."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from aiguillage.sidecar.config import (
    Limit,
    LimitScope,
    PolicyFinding,
    PolicyMode,
    Pricing,
    Provider,
    Residency,
    Route,
    SharedStore,
    SidecarConfig,
    StoreFailure,
    Strategy,
    Target,
    Timeouts,
)


def config(locations: list[str]) -> SidecarConfig:
    return SidecarConfig(
        namespace="ns",
        providers={"p": Provider(api="openai", endpoint="http://p", location="FR")},
        routes={
            "chat": Route(
                name="chat",
                residency=Residency(locations=frozenset(locations)),
                targets=(
                    Target(
                        provider="p",
                        model="m",
                        pricing=Pricing(
                            input_per_million=Decimal("0.1"), output_per_million=Decimal("0.3")
                        ),
                    ),
                ),
            )
        },
    )


def test_json_uses_camel_case_and_round_trips() -> None:
    sealed = config(["FR", "DE"]).sealed()
    body = orjson.loads(sealed.to_json())

    route = body["routes"]["chat"]
    assert route["timeouts"]["firstToken"] == 30.0
    assert route["circuitBreaker"]["consecutiveFailures"] == 5
    assert route["targets"][0]["pricing"]["inputPerMillion"] == "0.1"
    assert route["residency"] == {"locations": ["DE", "FR"], "jurisdictions": None}
    assert SidecarConfig.model_validate_json(sealed.to_json()) == sealed


def test_hash_is_stable_whatever_the_set_order() -> None:
    one = config(["FR", "DE", "IT", "ES"]).content_hash()
    two = config(["ES", "IT", "DE", "FR"]).content_hash()
    assert one == two
    assert one != config(["FR"]).content_hash()


def test_sealed_carries_its_hash_and_the_hash_ignores_itself() -> None:
    sealed = config(["FR"]).sealed()
    assert sealed.hash == sealed.content_hash() == config(["FR"]).content_hash()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["routes"]["chat"].update(targets=[]),
        lambda b: b["routes"]["chat"].update(strategy="fastest"),
        lambda b: b["routes"]["chat"]["timeouts"].update(firstToken=0),
        lambda b: b["routes"]["chat"]["retry"].update(attempts=11),
        lambda b: b["providers"]["p"].update(apiKey="sk-no"),
        lambda b: b.update(version=2),
    ],
    ids=["no-targets", "bad-strategy", "zero-timeout", "too-many-retries", "key", "version"],
)
def test_invalid_configs_are_rejected(mutate: object) -> None:
    body = orjson.loads(config(["FR"]).to_json())
    mutate(body)  # type: ignore[operator]
    with pytest.raises(ValidationError):
        SidecarConfig.model_validate(body)


def test_defaults() -> None:
    route = Route(name="r", targets=(Target(provider="p", model="m"),))
    assert route.strategy is Strategy.PRIORITY
    assert route.retry.attempts == 1
    assert route.timeouts == Timeouts()
    assert route.residency.rule("x").unrestricted


def test_routes_carry_data_protection_rules_in_camel_case() -> None:
    route = Route.model_validate(
        {
            "name": "chat",
            "targets": [{"provider": "p", "model": "m"}],
            "dataProtection": {
                "rules": [{"categories": ["email"], "action": "pseudonymise",
                           "when": {"notJurisdictions": ["EU"]}}],
                "denyLists": [{"name": "codenames", "terms": ["Bluebird"], "caseSensitive": True}],
            },
        }
    )  # fmt: skip
    assert route.data_protection is not None
    assert route.protection is not None
    assert route.protection is route.protection
    dumped = route.model_dump(mode="json", by_alias=True)
    assert dumped["dataProtection"]["denyLists"][0]["caseSensitive"] is True
    assert Route(name="plain", targets=(Target(provider="p", model="m"),)).protection is None


_IMPORTS = """
import sys
from aiguillage.sidecar import server, loader
from aiguillage.sidecar.config import Route
heavy = ("phonenumbers", "stdnum", "re2", "aiguillage.sidecar.privacy.engine")
before = sorted(m for m in heavy if m in sys.modules)
rules = {"rules": [{"categories": CATEGORIES, "action": "redact"}]}
route = Route.model_validate(
    {"name": "r", "targets": [{"provider": "p", "model": "m"}], "dataProtection": rules}
)
assert route.protection is not None
after = sorted(m for m in heavy if m in sys.modules)
print(before, after)
"""


@pytest.mark.parametrize(
    ("categories", "loaded"),
    [
        (["email"], "['aiguillage.sidecar.privacy.engine', 're2']"),
        (["email", "phone", "iban"],
         "['aiguillage.sidecar.privacy.engine', 'phonenumbers', 're2', 'stdnum']"),
    ],
)  # fmt: skip
def test_detection_libraries_load_only_with_rules_that_need_them(
    categories: list[str], loaded: str
) -> None:
    import subprocess
    import sys

    code = _IMPORTS.replace("CATEGORIES", repr(categories))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"[] {loaded}"


def governed(limits: tuple[Limit, ...], findings: tuple[PolicyFinding, ...]) -> SidecarConfig:
    """A config carrying everything AIPolicies compile into: limits, findings, a store."""
    base = config(["FR"])
    route = base.routes["chat"]
    target = route.targets[0].model_copy(update={"policy_audit": findings})
    store = SharedStore(url="redis://redis.infra:6379/2", credential="shared_store")
    route = route.model_copy(update={"targets": (target,), "limits": limits})
    return base.model_copy(update={"routes": {"chat": route}, "shared_store": store})


LIMITS = (
    Limit(policy="team", scope=LimitScope.NAMESPACE, budget_eur_per_month=Decimal("50.00")),
    Limit(
        policy="fair-use",
        scope=LimitScope.WORKLOAD,
        requests_per_minute=60,
        tokens_per_minute=100_000,
        mode=PolicyMode.AUDIT,
        when_store_unavailable=StoreFailure.CLOSED,
    ),
)
FINDINGS = (PolicyFinding(policy="eu-only", reason='provider "p" is located in US'),)


def test_policy_fields_use_camel_case_and_round_trip() -> None:
    sealed = governed(LIMITS, FINDINGS).sealed()
    body = orjson.loads(sealed.to_json())

    route = body["routes"]["chat"]
    assert route["limits"][0] == {
        "policy": "team", "scope": "namespace", "requestsPerMinute": None,
        "tokensPerMinute": None, "budgetEurPerMonth": "50.00", "mode": "Enforce",
        "whenStoreUnavailable": None,
    }  # fmt: skip
    assert route["limits"][1]["mode"] == "Audit"
    assert route["limits"][1]["whenStoreUnavailable"] == "closed"
    assert route["targets"][0]["policyAudit"] == [
        {"policy": "eu-only", "reason": 'provider "p" is located in US'}
    ]
    assert body["sharedStore"] == {
        "url": "redis://redis.infra:6379/2", "credential": "shared_store",
        "keyPrefix": "aiguillage", "timeZone": "Europe/Paris",
    }  # fmt: skip
    loaded = SidecarConfig.model_validate_json(sealed.to_json())
    assert loaded == sealed
    assert loaded.content_hash() == sealed.hash
    assert loaded.routes["chat"].limits[0].budget_eur_per_month == Decimal("50.00")


def test_policy_fields_change_the_hash_and_their_order_is_kept() -> None:
    plain = config(["FR"]).content_hash()
    assert governed((), ()).content_hash() != plain  # the store alone
    assert governed(LIMITS, ()).content_hash() != governed((), ()).content_hash()
    assert governed((), FINDINGS).content_hash() != governed((), ()).content_hash()
    # Hashing twice, or in another process's set order, gives the same hash.
    assert governed(LIMITS, FINDINGS).content_hash() == governed(LIMITS, FINDINGS).content_hash()


def test_old_configs_without_policy_fields_still_load() -> None:
    body = orjson.loads(config(["FR"]).to_json())
    del body["sharedStore"]
    del body["routes"]["chat"]["limits"]
    del body["routes"]["chat"]["targets"][0]["policyAudit"]
    loaded = SidecarConfig.model_validate(body)
    assert loaded.shared_store is None
    assert loaded.routes["chat"].limits == ()
    assert loaded.routes["chat"].targets[0].policy_audit == ()


def test_store_failure_defaults_closed_for_budgets_and_open_for_rates() -> None:
    default = Limit(policy="p", scope=LimitScope.ROUTE, requests_per_minute=1)
    assert default.on_store_failure(budget=True) is StoreFailure.CLOSED
    assert default.on_store_failure(budget=False) is StoreFailure.OPEN
    opened = default.model_copy(update={"when_store_unavailable": StoreFailure.OPEN})
    assert opened.on_store_failure(budget=True) is StoreFailure.OPEN


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "a limit needs requestsPerMinute, tokensPerMinute or budgetEurPerMonth"),
        ({"requestsPerMinute": 0}, "greater than or equal to 1"),
        ({"budgetEurPerMonth": "-1"}, "greater than or equal to 0"),
        ({"requestsPerMinute": 1, "scope": "pod"}, "'namespace', 'route' or 'workload'"),
        ({"requestsPerMinute": 1, "mode": "enforce"}, "'Enforce' or 'Audit'"),
    ],
)
def test_invalid_limits_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Limit.model_validate({"policy": "p", "scope": "route", **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "redis://:hunter2@redis:6379/0"}, "must not carry a password"),
        ({"url": "redis://user:hunter2@redis:6379/0"}, "must not carry a password"),
        ({"url": "http://redis:6379"}, "must be redis://host:port/db"),
        ({"url": "redis:///0"}, "must be redis://host:port/db"),
        ({"url": "redis://redis:99999/0"}, "is not a URL"),
        ({"url": "redis://redis:6379/cache"}, "database 'cache' must be a number"),
        ({"url": "redis://redis/0?password=x"}, "must not have a query"),
        ({"keyPrefix": "a:b"}, "no ':'"),
        ({"timeZone": "Europe/Atlantis"}, "not an IANA time zone"),
        ({"timeZone": "../../etc/passwd"}, "not an IANA time zone"),
        ({"credential": "../password"}, "should match pattern"),
    ],
)
def test_invalid_shared_stores_are_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SharedStore.model_validate({"url": "redis://redis:6379/0", **fields})


def test_shared_store_accepts_tls_a_user_name_and_no_database() -> None:
    for url in ("rediss://redis.example:6380/0", "redis://aiguillage@redis", "redis://[::1]:6379"):
        assert SharedStore(url=url).url == url
