"""Where a target really processes data, beyond its provider's declared location."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.processing import processing_location
from aiguillage.sidecar.residency import ResidencyRule

BEDROCK_EU = "https://bedrock-runtime.eu-central-1.amazonaws.com"


@pytest.mark.parametrize(
    ("api", "endpoint", "options", "model", "where"),
    [
        ("bedrock", BEDROCK_EU, {}, "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "EU"),
        ("bedrock", BEDROCK_EU, {}, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "US"),
        ("bedrock", BEDROCK_EU, {}, "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "GLOBAL"),
        ("bedrock", BEDROCK_EU, {}, "mistral.mistral-large-2402-v1:0", None),
        (
            "vertex-ai",
            "https://aiplatform.googleapis.com",
            {"project": "p"},
            "gemini-2.5-pro",
            "GLOBAL",
        ),
        ("vertex-ai", "https://europe-west9-aiplatform.googleapis.com", {}, "gemini-2.5-pro", None),
        (
            "vertex-ai",
            "https://europe-west9-aiplatform.googleapis.com",
            {"location": "global"},
            "g",
            "GLOBAL",
        ),
        ("openai", "https://api.eu.mistral.ai/v1", {}, "us.looks-like-a-profile", None),
    ],
)
def test_processing_location(
    api: str, endpoint: str, options: dict[str, str], model: str, where: str | None
) -> None:
    assert processing_location(api, endpoint, options, model) == where


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
