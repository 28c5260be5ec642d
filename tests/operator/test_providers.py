"""An AIProvider's own status: usable options, credentials, a location its endpoint confirms
(``providers.py``), with the sidecar's rules as the only source."""

from __future__ import annotations

from typing import Any

import pytest

from aiguillage.operator.inventory import Inventory, Secret, parse_provider
from aiguillage.operator.providers import admission_problems, conditions


def inventory(spec: dict[str, Any], secret: dict[str, bytes] | None = None) -> Inventory:
    inv = Inventory()
    body = {
        "metadata": {"name": "p"},
        "spec": {
            "api": "openai",
            "endpoint": "https://p.example/v1",
            "auth": {"apiKey": {"secretRef": {"name": "k", "key": "apiKey"}}},
            "models": [{"name": "m"}],
            **spec,
        },
    }
    inv.providers["p"] = parse_provider(body)
    inv.secrets[(inv.operator_namespace, "k")] = Secret(
        inv.operator_namespace, "k", {"apiKey": b"sk-1"} if secret is None else secret
    )
    return inv


def by_type(inv: Inventory) -> dict[str, tuple[bool, str, str]]:
    return {c[0]: (c[1], c[2], c[3]) for c in conditions(inv, "p")}


def test_a_usable_provider_is_ready() -> None:
    got = by_type(inventory({"residency": {"location": "FR"}}))
    assert got == {
        "Accepted": (True, "Accepted", "usable by the sidecar's openai adapter"),
        "CredentialsResolved": (True, "Resolved", "credentials found"),
        "ResidencyConsistent": (
            True,
            "Consistent",
            "the endpoint does not say where it processes data: the declaration is used",
        ),
        "Ready": (True, "Ready", "usable by routes"),
    }


def test_options_the_sidecar_cannot_use() -> None:
    got = by_type(
        inventory(
            {
                "api": "vertex-ai",
                "endpoint": "https://europe-west4-aiplatform.googleapis.com",
                "options": {"project": "p", "location": "us-central1"},
            }
        )
    )
    message = (
        'spec.options.location: "us-central1" does not match the endpoint\'s location '
        '"europe-west4"'
    )
    assert got["Accepted"] == (False, "InvalidOptions", message)
    assert got["Ready"] == (False, "InvalidOptions", message)


def test_a_credential_value_the_sidecar_would_refuse() -> None:
    got = by_type(inventory({}, {"apiKey": b"sk-1\nsk-2"}))
    assert got["CredentialsResolved"] == (
        False,
        "InvalidCredential",
        'Secret aiguillage-system/k key "apiKey" contains a control character (LF) at offset 4',
    )
    assert got["Ready"][1] == "InvalidCredential"


def test_a_location_the_endpoint_contradicts() -> None:
    spec = {
        "api": "bedrock",
        "endpoint": "https://bedrock-runtime.us-east-1.amazonaws.com",
        "residency": {"location": "FR"},
        "auth": {"none": {}},
    }
    got = by_type(inventory(spec))
    message = (
        'spec.residency.location: "FR" contradicts where the endpoint processes data: its '
        "endpoint is in AWS region us-east-1, which is US; residency is checked against where "
        "the endpoint processes data"
    )
    assert got["ResidencyConsistent"] == (False, "LocationContradicted", message)
    assert got["Ready"] == (False, "LocationContradicted", message)


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        (
            {"api": "azure-openai", "options": {"apiVersion": "latest"}},
            ["spec.options.apiVersion: must be an API version such as 2024-10-21"],
        ),
        (
            {
                "api": "vertex-ai",
                "endpoint": "https://us-central1-aiplatform.googleapis.com",
                "residency": {"location": "DE"},
            },
            # nothing is derived from options that are not valid
            ["spec.options.project: is required for api vertex-ai"],
        ),
        (
            {
                "api": "vertex-ai",
                "endpoint": "https://us-central1-aiplatform.googleapis.com",
                "residency": {"location": "DE"},
                "options": {"project": "p"},
            },
            [
                'spec.residency.location: "DE" contradicts where the endpoint processes data: '
                "its endpoint is in Vertex AI location us-central1, which is US",
            ],
        ),
        ({"api": "azure-openai", "residency": {"location": "SE"}}, []),
    ],
)
def test_what_admission_refuses(spec: dict[str, Any], problems: list[str]) -> None:
    assert admission_problems(inventory(spec).providers["p"].spec) == problems
