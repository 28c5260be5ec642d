"""Each provider API's options (``adapters/options.py``): the one check everyone asks."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.adapters import MODULES, adapter_for
from aiguillage.sidecar.adapters.options import (
    OPTIONS,
    BedrockOptions,
    InvalidOptions,
    option_names,
    options_problems,
    parse_options,
    required_options,
)


def test_every_api_has_an_options_model() -> None:
    assert set(OPTIONS) == set(MODULES)
    for api in MODULES:
        assert adapter_for(api).api == api


@pytest.mark.parametrize(
    ("api", "endpoint", "options", "problems"),
    [
        ("openai", "https://x.example/v1", {}, []),
        (
            "openai",
            "ftp://x.example",
            {},
            ["endpoint: must be an http:// or https:// URL with a host"],
        ),
        (
            "openai",
            "https://[::1",
            {},
            ["endpoint: must be an http:// or https:// URL with a host"],
        ),
        ("azure-openai", "https://x.openai.azure.com", {"apiVersion": "2025-04-01-preview"}, []),
        (
            "vertex-ai",
            "https://europe-west4-aiplatform.googleapis.com",
            {"project": "Bad Project!", "apiVersion": "1"},
            [
                "options.project: must be a Google Cloud project id",
                "options.apiVersion: must be such as v1",
            ],
        ),
        (
            "bedrock",
            "https://bedrock-runtime.eu-west-3.amazonaws.com",
            {"region": "eu-central-1"},
            ['options.region: "eu-central-1" does not match the endpoint\'s region "eu-west-3"'],
        ),
        (
            "bedrock",
            "https://bedrock-runtime.eu-west-3.amazonaws.com",
            {"inferenceProfileLocation": "europe"},
            [
                "options.inferenceProfileLocation: must be a country code in capitals (e.g. FR), "
                "EU or EEA"
            ],
        ),
    ],
)
def test_options_problems(
    api: str, endpoint: str, options: dict[str, str], problems: list[str]
) -> None:
    assert [str(p) for p in options_problems(api, endpoint, options)] == problems


def test_parsed_options_carry_defaults_and_what_the_endpoint_says() -> None:
    parsed: BedrockOptions = parse_options(
        "bedrock", "https://bedrock-runtime.eu-west-3.amazonaws.com", {}
    )
    assert parsed.region_at("bedrock-runtime.eu-west-3.amazonaws.com") == "eu-west-3"
    assert parse_options("azure-openai", "https://x.example", {}).api_version == "2024-10-21"
    with pytest.raises(InvalidOptions, match=r"options\.project: is required for api vertex-ai"):
        parse_options("vertex-ai", "https://aiplatform.googleapis.com", {})


def test_names_for_the_crd() -> None:
    assert required_options("vertex-ai") == ["project"]
    assert required_options("bedrock") == []
    assert option_names("bedrock") == ["region", "inferenceProfileLocation"]
    assert option_names("openai") == []
