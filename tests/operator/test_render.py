"""The compile step behind both the operator and ``aiguillage render``."""

from __future__ import annotations

import json
from typing import Any

from aiguillage.operator.inventory import Inventory, Secret, parse_provider, parse_route
from aiguillage.operator.render import render_namespace


def provider(name: str, location: str, jurisdiction: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "api": "openai",
            "endpoint": f"https://{name}.example/v1",
            "residency": {"location": location, "jurisdiction": jurisdiction},
            "auth": {"apiKey": {"secretRef": {"name": f"{name}-key", "key": "apiKey"}}},
            "models": [{"name": "m", "pricing": {"inputPerMillion": "1", "outputPerMillion": "2"}}],
            **spec,
        },
    }


def route(name: str, model: str, *targets: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "apps",
            "generation": 3,
            "creationTimestamp": f"2026-01-01T00:00:0{len(name) % 10}Z",
        },
        "spec": {
            "model": model,
            "targets": [{"provider": t, "model": "m"} for t in targets],
            **spec,
        },
    }


def inventory(*providers: dict[str, Any], routes: list[dict[str, Any]]) -> Inventory:
    inv = Inventory()
    for body in providers:
        p = parse_provider(body)
        inv.providers[p.name] = p
        inv.secrets[(inv.operator_namespace, f"{p.name}-key")] = Secret(
            inv.operator_namespace, f"{p.name}-key", {"apiKey": f"key-of-{p.name}".encode()}
        )
    for body in routes:
        r = parse_route(body, "apps")
        inv.routes[("apps", r.name)] = r
    return inv


def conditions(rendered: Any, name: str) -> dict[str, Any]:
    return {c.type: c for c in rendered.reports[name].conditions()}


def test_route_outside_residency_keeps_compliant_targets_only() -> None:
    inv = inventory(
        provider("eu", "FR", "FR"),
        provider("us", "US", "US"),
        routes=[route("chat", "chat", "eu", "us", residency={"locations": ["EU"]})],
    )
    rendered = render_namespace(inv, "apps")
    assert [t.provider for t in rendered.config.routes["chat"].targets] == ["eu"]
    assert set(rendered.credentials) == {"eu"}  # the US key is not copied into the namespace
    conds = conditions(rendered, "chat")
    assert not conds["ResidencyCompliant"].status
    assert conds["ResidencyCompliant"].message == (
        'spec.targets[1]: provider "us" is located in US, outside residency.locations [EU]'
    )
    assert not conds["Ready"].status
    assert conds["Ready"].reason == "TargetsExcluded"


def test_jurisdiction_rule_excludes_us_company_in_eu_region() -> None:
    inv = inventory(
        provider("azure-fr", "FR", "US"),
        routes=[route("chat", "chat", "azure-fr", residency={"jurisdictions": ["EU"]})],
    )
    rendered = render_namespace(inv, "apps")
    assert rendered.config.routes == {}
    assert "is under jurisdiction US, outside residency.jurisdictions [EU]" in (
        conditions(rendered, "chat")["ResidencyCompliant"].message
    )


def test_two_routes_claiming_one_model_older_wins() -> None:
    inv = inventory(
        provider("eu", "FR", "FR"),
        routes=[route("a", "chat", "eu"), route("bb", "chat", "eu")],
    )
    rendered = render_namespace(inv, "apps")
    assert rendered.config.routes["chat"].name == "a"
    accepted = conditions(rendered, "bb")["Accepted"]
    assert not accepted.status
    assert accepted.message == 'spec.model: "chat" is already served by AIRoute a'


def test_missing_secret_key_is_reported_without_the_value() -> None:
    inv = inventory(provider("eu", "FR", "FR"), routes=[route("chat", "chat", "eu")])
    inv.secrets[(inv.operator_namespace, "eu-key")] = Secret(inv.operator_namespace, "eu-key", {})
    rendered = render_namespace(inv, "apps")
    refs = conditions(rendered, "chat")["ResolvedRefs"]
    assert refs.reason == "SecretNotFound"
    assert refs.message == (
        'spec.targets[0]: provider "eu": Secret aiguillage-system/eu-key has no key "apiKey"'
    )
    assert rendered.credentials == {}


def test_durations_and_pricing_compile_to_numbers() -> None:
    inv = inventory(
        provider("eu", "FR", "FR"),
        routes=[route("chat", "chat", "eu", timeouts={"firstToken": "1m30s", "connect": "250ms"})],
    )
    compiled = render_namespace(inv, "apps").config.routes["chat"]
    assert compiled.timeouts.first_token == 90
    assert compiled.timeouts.connect == 0.25
    assert compiled.targets[0].pricing is not None
    assert str(compiled.targets[0].pricing.output_per_million) == "2"


def test_hash_changes_with_content_only() -> None:
    inv = inventory(provider("eu", "FR", "FR"), routes=[route("chat", "chat", "eu")])
    first = render_namespace(inv, "apps").config.hash
    assert render_namespace(inv, "apps").config.hash == first
    inv.routes[("apps", "chat")] = parse_route(route("chat", "chat2", "eu"), "apps")
    assert render_namespace(inv, "apps").config.hash != first


def test_bedrock_us_profile_on_an_eu_endpoint_is_outside_eu_residency() -> None:
    body = provider("bedrock-fra", "DE", "US")
    body["spec"].update(
        api="bedrock",
        endpoint="https://bedrock-runtime.eu-central-1.amazonaws.com",
        models=[
            {"name": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
            {"name": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
        ],
    )
    r = route("chat", "chat", "bedrock-fra", residency={"locations": ["EU"]})
    r["spec"]["targets"] = [
        {"provider": "bedrock-fra", "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
        {"provider": "bedrock-fra", "model": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
    ]
    rendered = render_namespace(inventory(body, routes=[r]), "apps")
    targets = rendered.config.routes["chat"].targets
    assert [t.model for t in targets] == ["eu.anthropic.claude-sonnet-4-5-20250929-v1:0"]
    assert targets[0].location == "EU"  # the sidecar checks this, not the endpoint's DE
    assert conditions(rendered, "chat")["ResidencyCompliant"].message == (
        'spec.targets[0]: provider "bedrock-fra" with model '
        '"us.anthropic.claude-sonnet-4-5-20250929-v1:0" is located in US, '
        "outside residency.locations [EU]"
    )


def test_aws_keys_become_one_credential_file_for_bedrock() -> None:
    body = provider("bedrock-fra", "DE", "US")
    body["spec"].update(
        api="bedrock",
        endpoint="https://bedrock-runtime.eu-central-1.amazonaws.com",
        auth={"awsSigV4": {"secretRef": {"name": "aws"}}},
    )
    inv = inventory(body, routes=[route("chat", "chat", "bedrock-fra")])
    inv.secrets[(inv.operator_namespace, "aws")] = Secret(
        inv.operator_namespace, "aws", {"accessKeyId": b"AKIDEXAMPLE", "secretAccessKey": b"s3cr3t"}
    )
    rendered = render_namespace(inv, "apps")
    assert json.loads(rendered.credentials["bedrock-fra"]) == {
        "accessKeyId": "AKIDEXAMPLE",
        "secretAccessKey": "s3cr3t",
    }
    del inv.secrets[(inv.operator_namespace, "aws")].data["secretAccessKey"]  # type: ignore[attr-defined]
    refs = conditions(render_namespace(inv, "apps"), "chat")["ResolvedRefs"]
    assert refs.message == (
        'spec.targets[0]: provider "bedrock-fra": Secret aiguillage-system/aws has no key '
        '"secretAccessKey"'
    )
