"""The compiled config model (``config.py``): wire names, validation and the content hash."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from aiguillage.sidecar.config import (
    Pricing,
    Provider,
    Residency,
    Route,
    SidecarConfig,
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
