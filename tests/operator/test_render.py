"""The compile step behind both the operator and ``aiguillage render``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from aiguillage.operator.errors import ManifestError
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


def test_answer_size_limits_compile_into_the_route_with_safe_defaults() -> None:
    inv = inventory(
        provider("eu", "FR", "FR"),
        routes=[
            route("chat", "chat", "eu", sizeLimits={"maxResponseBytes": 65536}),
            route("other", "other", "eu"),
        ],
    )
    routes = render_namespace(inv, "apps").config.routes
    assert routes["chat"].size_limits.max_response_bytes == 65536
    assert routes["chat"].size_limits.max_event_bytes == 8 * 1024 * 1024
    assert routes["other"].size_limits.max_response_bytes == 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("size", "bound"),
    [(0, "greater than or equal to 1024"), (2 * 1024**3, "less than or equal to 1073741824")],
)
def test_answer_size_limits_out_of_bounds_are_refused(size: int, bound: str) -> None:
    with pytest.raises(
        ManifestError, match=rf"spec\.sizeLimits\.maxResponseBytes: Input should be {bound}"
    ):
        parse_route(route("chat", "chat", "eu", sizeLimits={"maxResponseBytes": size}), "apps")


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


def aws_keys_inventory(keys: dict[str, bytes]) -> Inventory:
    """Provider bedrock-fra signing with the keys of Secret "aws", used by route chat."""
    body = provider("bedrock-fra", "DE", "US")
    body["spec"].update(
        api="bedrock",
        endpoint="https://bedrock-runtime.eu-central-1.amazonaws.com",
        auth={"awsSigV4": {"secretRef": {"name": "aws"}}},
    )
    inv = inventory(body, routes=[route("chat", "chat", "bedrock-fra")])
    inv.secrets[(inv.operator_namespace, "aws")] = Secret(inv.operator_namespace, "aws", keys)
    return inv


def test_aws_keys_become_one_credential_file_for_bedrock() -> None:
    inv = aws_keys_inventory({"accessKeyId": b"AKIDEXAMPLE", "secretAccessKey": b"s3cr3t"})
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


# -- providers the sidecar could not use ------------------------------------------------------


def test_a_provider_with_bad_options_is_left_out_with_the_field_named() -> None:
    vertex = provider("vertex", "NL", "US")
    vertex["spec"].update(
        api="vertex-ai", endpoint="https://europe-west4-aiplatform.googleapis.com"
    )
    inv = inventory(
        provider("eu", "FR", "FR"), vertex, routes=[route("chat", "chat", "vertex", "eu")]
    )
    rendered = render_namespace(inv, "apps")
    assert [t.provider for t in rendered.config.routes["chat"].targets] == ["eu"]
    assert set(rendered.config.providers) == {"eu"}
    assert set(rendered.credentials) == {"eu"}
    refs = conditions(rendered, "chat")["ResolvedRefs"]
    assert refs.reason == "ProviderInvalid"
    assert refs.message == (
        'spec.targets[0]: provider "vertex" is not usable: '
        "spec.options.project: is required for api vertex-ai"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"sk-1\r\nX-Evil: 1", "contains a control character (CR) at offset 4"),
        (b"\xff\xfe\x00s\x00k", "is not UTF-8 text (invalid byte at offset 0)"),
    ],
)
def test_an_unusable_secret_value_is_never_copied(value: bytes, reason: str) -> None:
    inv = inventory(provider("eu", "FR", "FR"), routes=[route("chat", "chat", "eu")])
    inv.secrets[(inv.operator_namespace, "eu-key")] = Secret(
        inv.operator_namespace, "eu-key", {"apiKey": value}
    )
    rendered = render_namespace(inv, "apps")
    assert rendered.credentials == {}
    assert rendered.config.routes == {}
    refs = conditions(rendered, "chat")["ResolvedRefs"]
    assert refs.reason == "InvalidCredential"
    assert refs.message == (
        f'spec.targets[0]: provider "eu": Secret aiguillage-system/eu-key key "apiKey" {reason}'
    )


def test_aws_keys_that_are_not_text_are_refused_not_crashed_on() -> None:
    inv = aws_keys_inventory({"accessKeyId": b"AKID\xff", "secretAccessKey": b"s"})
    refs = conditions(render_namespace(inv, "apps"), "chat")["ResolvedRefs"]
    assert refs.message == (
        'spec.targets[0]: provider "bedrock-fra": Secret aiguillage-system/aws key '
        '"accessKeyId" is not UTF-8 text (invalid byte at offset 4)'
    )


# -- where providers really run ----------------------------------------------------------------


def bedrock(name: str, declared: str, endpoint: str, *models: str, **options: str) -> Any:
    body = provider(name, declared, "US")
    body["spec"].update(
        api="bedrock", endpoint=endpoint, models=[{"name": m} for m in models], options=options
    )
    return body


def eu_route(name: str, *targets: tuple[str, str]) -> dict[str, Any]:
    r = route(name, name, "x", residency={"locations": ["EU"]})
    r["spec"]["targets"] = [{"provider": p, "model": m} for p, m in targets]
    return r


def test_an_endpoint_in_the_us_is_outside_eu_residency_whatever_is_declared() -> None:
    body = bedrock("aws", "FR", "https://bedrock-runtime.us-east-1.amazonaws.com", "mistral.m")
    rendered = render_namespace(
        inventory(body, routes=[eu_route("chat", ("aws", "mistral.m"))]), "apps"
    )
    assert rendered.config.routes == {}
    assert conditions(rendered, "chat")["ResidencyCompliant"].message == (
        'spec.targets[0]: provider "aws" is located in US, outside residency.locations [EU] '
        "(its endpoint is in AWS region us-east-1)"
    )


def test_the_compiled_location_is_the_endpoints() -> None:
    body = bedrock("aws", "EU", "https://bedrock-runtime.eu-west-3.amazonaws.com", "mistral.m")
    r = route("chat", "chat", "aws", residency={"locations": ["FR"]})
    r["spec"]["targets"][0]["model"] = "mistral.m"
    rendered = render_namespace(inventory(body, routes=[r]), "apps")
    assert rendered.config.providers["aws"].location == "FR"  # more precise than "EU"
    assert [t.model for t in rendered.config.routes["chat"].targets] == ["mistral.m"]


def test_an_application_inference_profile_is_unknown_until_declared() -> None:
    arn = "arn:aws:bedrock:eu-west-3:123456789012:application-inference-profile/abc123"
    endpoint = "https://bedrock-runtime.eu-west-3.amazonaws.com"
    rendered = render_namespace(
        inventory(bedrock("aws", "FR", endpoint, arn), routes=[eu_route("chat", ("aws", arn))]),
        "apps",
    )
    assert rendered.config.routes == {}
    assert conditions(rendered, "chat")["ResidencyCompliant"].message == (
        f'spec.targets[0]: provider "aws" with model "{arn}" processes data in a place that '
        "cannot be known from its configuration"
    )
    declared = bedrock("aws", "FR", endpoint, arn, inferenceProfileLocation="EU")
    rendered = render_namespace(
        inventory(declared, routes=[eu_route("chat", ("aws", arn))]), "apps"
    )
    assert rendered.config.routes["chat"].targets[0].location == "EU"


def test_a_vertex_endpoint_in_the_us_declared_in_germany_is_not_eu() -> None:
    body = provider("vertex", "DE", "US")
    body["spec"].update(
        api="vertex-ai",
        endpoint="https://us-central1-aiplatform.googleapis.com",
        options={"project": "p"},
    )
    rendered = render_namespace(inventory(body, routes=[eu_route("chat", ("vertex", "m"))]), "apps")
    assert rendered.config.routes == {}
    assert "(its endpoint is in Vertex AI location us-central1)" in (
        conditions(rendered, "chat")["ResidencyCompliant"].message
    )


# -- a namespace that does not fit in a ConfigMap ----------------------------------------------


def big_route(name: str, created: int, targets: int) -> dict[str, Any]:
    r = route(name, name, "eu")
    r["metadata"]["creationTimestamp"] = f"2026-01-01T00:{created // 60:02d}:{created % 60:02d}Z"
    r["spec"]["targets"] = [{"provider": "eu", "model": f"m{i}"} for i in range(targets)]
    return r


def many_models(name: str, count: int) -> dict[str, Any]:
    body = provider(name, "FR", "FR")
    body["spec"]["models"] = [{"name": f"m{i}"} for i in range(count)]
    return body


def test_routes_that_do_not_fit_are_left_out_newest_first() -> None:
    inv = inventory(
        many_models("eu", 64),
        routes=[big_route(f"r{i}", i, 64) for i in range(12)],
    )
    budget = 60_000
    rendered = render_namespace(inv, "apps", budget=budget)
    served = set(rendered.config.routes)
    assert 0 < len(served) < 12
    # the oldest are kept
    assert served == {f"r{i}" for i in range(len(served))}
    assert len(rendered.config_json) + len("config.json") <= budget
    left_out = conditions(rendered, "r11")["Ready"]
    assert left_out.status is False
    assert left_out.reason == "ConfigTooLarge"
    assert left_out.message.startswith(
        "not served: with this route the namespace's compiled config would be "
    )
    assert f"over the {budget}-byte limit" in left_out.message
    assert conditions(rendered, "r0")["Ready"].reason == "Serving"


def test_a_namespace_over_one_mebibyte_stays_under_the_configmap_limit() -> None:
    inv = inventory(
        many_models("eu", 64),
        routes=[big_route(f"route-{i:03d}", i, 64) for i in range(100)],
    )
    rendered = render_namespace(inv, "apps")
    assert len(rendered.config_json) < 1024 * 1024 - 64 * 1024
    reasons = {conditions(rendered, name)["Ready"].reason for name in rendered.reports}
    assert reasons == {"Serving", "ConfigTooLarge"}


def test_prices_in_another_currency_are_compiled_in_euros() -> None:
    usd = {"inputPerMillion": "0.15", "outputPerMillion": "0.60", "currency": "USD",
           "eurRate": "0.92"}  # fmt: skip
    inv = inventory(
        provider("us", "US", "US", models=[{"name": "m", "pricing": usd}]),
        routes=[route("chat", "chat", "us")],
    )
    pricing = render_namespace(inv, "apps").config.routes["chat"].targets[0].pricing
    assert pricing is not None
    assert (pricing.input_per_million, pricing.output_per_million, pricing.currency) == (
        Decimal("0.1380"),
        Decimal("0.5520"),
        "EUR",
    )
