"""Where a target really processes data, beyond its provider's declared location."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.processing import (
    contradiction,
    processing_location,
    provider_location,
    within,
)
from aiguillage.sidecar.residency import ResidencyRule

BEDROCK_EU = "https://bedrock-runtime.eu-central-1.amazonaws.com"
BEDROCK_US = "https://bedrock-runtime.us-east-1.amazonaws.com"
VERTEX_US = "https://us-central1-aiplatform.googleapis.com"
APP_PROFILE = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3"


@pytest.mark.parametrize(
    ("model_id", "where"),
    [
        ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "EU"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "US"),
        ("us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", "US"),
        ("global.anthropic.claude-sonnet-4-20250514-v1:0", "GLOBAL"),
        ("apac.amazon.nova-lite-v1:0", "APAC"),
        ("jp.anthropic.claude-sonnet-4-5-20250929-v1:0", "JP"),
        ("anthropic.claude-3-haiku-20240307-v1:0", None),
        ("amazon.titan-embed-text-v2:0", None),
        ("mistral.mistral-large-2402-v1:0", None),
        ("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.meta.llama3-2-1b-v1:0", "EU"),
        ("arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-v2", None),
        (APP_PROFILE, "UNKNOWN"),
    ],
)
def test_bedrock_model_ids(model_id: str, where: str | None) -> None:
    assert processing_location("bedrock", BEDROCK_EU, {}, model_id) == where


def test_an_application_profile_is_where_the_provider_declares_it() -> None:
    options = {"inferenceProfileLocation": "EU"}
    assert processing_location("bedrock", BEDROCK_EU, options, APP_PROFILE) == "EU"


def test_model_ids_of_other_apis_say_nothing() -> None:
    assert processing_location("openai", "https://api.eu.mistral.ai/v1", {}, "us.x") is None


@pytest.mark.parametrize(
    ("api", "endpoint", "options", "where"),
    [
        ("bedrock", BEDROCK_US, {}, "US"),
        ("bedrock", "https://bedrock-runtime.eu-west-3.amazonaws.com", {}, "FR"),
        ("bedrock", BEDROCK_EU, {}, "DE"),
        ("bedrock", "https://bedrock-runtime-fips.us-east-1.amazonaws.com", {}, "US"),
        ("bedrock", "https://vpce.bedrock.example.internal", {"region": "eu-west-3"}, "FR"),
        ("bedrock", "https://vpce.bedrock.example.internal", {"region": "xx-new-9"}, None),
        ("vertex-ai", VERTEX_US, {"project": "p"}, "US"),
        ("vertex-ai", "https://europe-west9-aiplatform.googleapis.com", {}, "FR"),
        ("vertex-ai", "https://aiplatform.googleapis.com", {}, "GLOBAL"),
        ("vertex-ai", "https://aiplatform.eu.rep.googleapis.com", {}, "EU"),
        ("vertex-ai", "http://127.0.0.1:9", {"location": "europe-west3"}, "DE"),
        ("vertex-ai", "http://127.0.0.1:9", {"location": "global"}, "GLOBAL"),
        # Azure's deployment type is not in the URL: only the declaration counts.
        ("azure-openai", "https://x.openai.azure.com", {}, "FR"),
        ("openai", "https://api.openai.com/v1", {}, "FR"),
    ],
)
def test_provider_location_follows_the_endpoint(
    api: str, endpoint: str, options: dict[str, str], where: str | None
) -> None:
    declared = "FR"
    assert provider_location(declared, api, endpoint, options) == (where or declared)


def test_an_undeclared_provider_gets_the_location_its_endpoint_says() -> None:
    assert provider_location(None, "bedrock", BEDROCK_EU, {}) == "DE"
    assert provider_location(None, "openai", "https://api.openai.com/v1", {}) is None


@pytest.mark.parametrize(
    ("declared", "api", "endpoint", "options", "message"),
    [
        (
            "FR",
            "bedrock",
            BEDROCK_US,
            {},
            '"FR" contradicts where the endpoint processes data: its endpoint is in AWS region '
            "us-east-1, which is US",
        ),
        (
            "FR",
            "bedrock",
            "https://vpce.example.internal",
            {"region": "us-east-1"},
            '"FR" contradicts where the endpoint processes data: options.region is AWS region '
            "us-east-1, which is US",
        ),
        (
            "DE",
            "vertex-ai",
            VERTEX_US,
            {"project": "p"},
            '"DE" contradicts where the endpoint processes data: its endpoint is in Vertex AI '
            "location us-central1, which is US",
        ),
        (
            "DE",
            "vertex-ai",
            "https://aiplatform.googleapis.com",
            {"project": "p"},
            '"DE" contradicts where the endpoint processes data: its endpoint is in Vertex AI '
            "location global, which is any region in the world",
        ),
        (
            "FR",
            "vertex-ai",
            "https://aiplatform.eu.rep.googleapis.com",
            {"project": "p"},
            '"FR" contradicts where the endpoint processes data: its endpoint is in Vertex AI '
            "location eu, which is anywhere in EU",
        ),
    ],
)
def test_a_declaration_the_endpoint_contradicts(
    declared: str, api: str, endpoint: str, options: dict[str, str], message: str
) -> None:
    problem = contradiction(declared, api, endpoint, options)
    assert problem is not None
    assert problem.field == "residency.location"
    assert problem.reason == message


@pytest.mark.parametrize(
    ("declared", "api", "endpoint"),
    [
        ("DE", "bedrock", BEDROCK_EU),
        ("EU", "bedrock", BEDROCK_EU),  # a wider claim is not a contradiction
        ("EEA", "vertex-ai", "https://aiplatform.eu.rep.googleapis.com"),
        (None, "bedrock", BEDROCK_US),
        ("US", "azure-openai", "https://x.openai.azure.com"),  # nothing to contradict
    ],
)
def test_a_consistent_declaration(declared: str | None, api: str, endpoint: str) -> None:
    assert contradiction(declared, api, endpoint, {}) is None


def test_within() -> None:
    assert within("FR", "EU")
    assert within("EU", "EEA")
    assert not within("EEA", "EU")
    assert not within("US", "EU")
    assert not within("GLOBAL", "EU")


def test_group_location_complies_only_when_the_whole_group_is_allowed() -> None:
    eu_only = ResidencyRule.parse(["EU"], None)
    france = ResidencyRule.parse(["FR"], None)
    assert eu_only.complies("EU", "US")
    assert eu_only.complies("EEA", "US") is False  # Norway is in the EEA, not the EU
    assert france.violation("EU", None) == (
        "may process data anywhere in EU, outside locations [FR]"
    )
    assert eu_only.violation("GLOBAL", None) == (
        "may process data in any region (global endpoint or profile)"
    )
    assert ResidencyRule.parse(None, ["EU"]).complies(
        "GLOBAL", "DE"
    )  # only jurisdiction restricted


def test_unknown_and_other_geographies_never_satisfy_a_location_rule() -> None:
    everywhere_listed = ResidencyRule.parse(["EEA", "US", "JP", "AU", "SG", "IN", "KR"], None)
    assert everywhere_listed.violation("UNKNOWN", None) == (
        "processes data in a place that cannot be known from its configuration"
    )
    assert everywhere_listed.violation("APAC", None) == (
        "may process data anywhere in APAC, outside locations [EEA, AU, IN, JP, KR, SG, US]"
    )
    assert ResidencyRule.parse(None, ["US"]).complies("UNKNOWN", "US")  # jurisdiction only
