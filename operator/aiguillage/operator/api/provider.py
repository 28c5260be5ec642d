"""AIProvider (cluster-scoped): one AI provider endpoint, owned by the platform team."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from aiguillage.operator.api.common import (
    ApiModel,
    CountryCode,
    CountryOrGroup,
    Matching,
    ObjectName,
    ObjectStatus,
    SecretKey,
    SecretKeyRef,
    k8s,
)
from aiguillage.sidecar.adapters.options import option_names, required_options
from aiguillage.sidecar.credentials import credential_problem

Price = Annotated[
    str, Matching(r"^[0-9]+(\.[0-9]+)?$", "must be a decimal number such as 0.10", 32)
]


class Api(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE_OPENAI = "azure-openai"
    GEMINI = "gemini"
    VERTEX_AI = "vertex-ai"
    BEDROCK = "bedrock"


class ProviderResidency(ApiModel):
    """Where this provider processes data and who operates it."""

    location: CountryOrGroup | None = None
    """Country where inference runs (ISO 3166-1 alpha-2, e.g. FR), or EU / EEA when it may
    run in any region of that group (e.g. an Azure Data Zone or a Bedrock eu. profile). A
    provider without a location complies with no residency rule that restricts locations."""
    region: str | None = None
    """Cloud region, informative only (e.g. paris, francecentral)."""
    jurisdiction: CountryCode | None = None
    """Country of the legal home of the company operating the provider (e.g. US means
    CLOUD Act exposure)."""


class ApiKeyAuth(ApiModel):
    """A static API key read from a Secret."""

    secret_ref: SecretKeyRef
    """The Secret (in the operator's namespace) and key holding the API key."""


class NoAuth(ApiModel):
    """No credentials are sent (e.g. a self-hosted vLLM inside the cluster)."""


class SecretName(ApiModel):
    """A Secret in the operator's namespace."""

    name: ObjectName
    """Name of the Secret."""


class AwsSigV4Auth(ApiModel):
    """Static AWS keys from a Secret, for Bedrock requests signed with SigV4."""

    secret_ref: SecretName
    """The Secret (in the operator's namespace) holding the keys."""
    access_key_id_key: SecretKey = "accessKeyId"
    """Key of the access key id in the Secret."""
    secret_access_key_key: SecretKey = "secretAccessKey"
    """Key of the secret access key in the Secret."""
    session_token_key: SecretKey | None = None
    """Key of a session token in the Secret, for temporary credentials."""


class Auth(ApiModel):
    """How the sidecar authenticates to the provider. Exactly one method must be set."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": k8s(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "[has(self.apiKey), has(self.none), has(self.awsSigV4)]"
                        ".filter(x, x).size() == 1",
                        "message": "exactly one of apiKey, awsSigV4 or none must be set",
                    }
                ]
            }
        )
    }
    api_key: ApiKeyAuth | None = None
    """Send a static API key (or, for vertex-ai, an OAuth access token) from a Secret, in the
    header the provider's API expects."""
    aws_sig_v4: AwsSigV4Auth | None = Field(default=None, alias="awsSigV4")
    """Sign requests with AWS SigV4 using static keys from a Secret (bedrock)."""
    none: NoAuth | None = None
    """Send no credentials."""

    def secret_name(self) -> str | None:
        """The Secret the credentials come from, if any."""
        if self.api_key is not None:
            return self.api_key.secret_ref.name
        if self.aws_sig_v4 is not None:
            return self.aws_sig_v4.secret_ref.name
        return None

    def credential(self, data: Mapping[str, bytes]) -> bytes | str:
        """The credential file's content, from the Secret's data; or why it cannot be made
        (never quoting the value). Values are checked with the sidecar's own rule, so a
        value the sidecar would refuse never reaches a namespace's Secret."""
        if self.api_key is not None:
            key = self.api_key.secret_ref.key
            value = data.get(key)
            if not value:
                return f'has no key "{key}"'
            problem = credential_problem(value)
            return f'key "{key}" {problem}' if problem else value
        if self.aws_sig_v4 is not None:
            aws = self.aws_sig_v4
            fields = {
                "accessKeyId": aws.access_key_id_key,
                "secretAccessKey": aws.secret_access_key_key,
            }
            if aws.session_token_key:
                fields["sessionToken"] = aws.session_token_key
            missing = [k for k in fields.values() if not data.get(k)]
            if missing:
                return "has no key " + ", ".join(f'"{k}"' for k in missing)
            for k in fields.values():
                problem = credential_problem(data[k])
                if problem:
                    return f'key "{k}" {problem}'
            return json.dumps({f: data[k].strip().decode() for f, k in fields.items()}).encode()
        return b""


_EUR_RATE_RULE = {
    "rule": "self.currency == 'EUR' ? !has(self.eurRate) : has(self.eurRate)",
    "message": "eurRate (euros for one unit of currency) is required when currency is not "
    "EUR, and only then",
}


class ModelPricing(ApiModel):
    """Price per million tokens, as decimal strings (e.g. "0.10"), in euros or in another
    currency converted at the rate given here; costs are always accounted in euros."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": k8s(**{"x-kubernetes-validations": [_EUR_RATE_RULE]})
    }
    input_per_million: Price
    """Price of one million input (prompt) tokens."""
    output_per_million: Price
    """Price of one million output (completion) tokens."""
    currency: Annotated[
        str, Matching(r"^[A-Z]{3}$", "must be an ISO 4217 currency code such as EUR or USD", 3)
    ] = "EUR"
    """Currency of the prices (ISO 4217, e.g. EUR, USD, GBP)."""
    eur_rate: Price | None = None
    """Euros for one unit of currency (e.g. "0.92" for USD), required when currency is not
    EUR: prices are converted at this rate when the config is compiled."""

    @model_validator(mode="after")
    def _rate_with_currency(self) -> ModelPricing:
        if (self.currency == "EUR") == (self.eur_rate is not None):
            raise ValueError(_EUR_RATE_RULE["message"])
        return self

    def _in_eur(self, price: str) -> Decimal:
        return Decimal(price) * (Decimal(self.eur_rate) if self.eur_rate else Decimal(1))

    def input(self) -> Decimal:
        """Price of one million input tokens in euros."""
        return self._in_eur(self.input_per_million)

    def output(self) -> Decimal:
        """Price of one million output tokens in euros."""
        return self._in_eur(self.output_per_million)


class ProviderModel(ApiModel):
    """A model this provider serves."""

    name: str = Field(min_length=1, max_length=253)
    """The provider's own model name (for Azure OpenAI: the deployment name)."""
    pricing: ModelPricing | None = None
    """Price list for cost accounting and the cost routing strategy."""


def _option_rules() -> list[dict[str, str]]:
    """CEL rules for each API's options, from the sidecar's own option models: what is
    required, and which names exist (the webhook and status check the values)."""
    rules = []
    for api in Api:
        for name in required_options(api.value):
            rules.append(
                {
                    "rule": f"self.api != '{api.value}' || "
                    f"(has(self.options) && '{name}' in self.options)",
                    "message": f"options.{name} is required for api {api.value}",
                }
            )
        names = option_names(api.value)
        listed = ", ".join(f"'{n}'" for n in names)
        known = f"self.options.all(k, k in [{listed}])" if names else "size(self.options) == 0"
        takes = f"takes only {', '.join(names)}" if names else "takes no options"
        rules.append(
            {
                "rule": f"self.api != '{api.value}' || !has(self.options) || {known}",
                "message": f"options: api {api.value} {takes}",
            }
        )
    return rules


class AIProviderSpec(ApiModel):
    """An AI provider endpoint that routes can send requests to."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": k8s(**{"x-kubernetes-validations": _option_rules()})
    }

    api: Api
    """Wire schema spoken by the endpoint: openai (also Mistral, OVHcloud, Scaleway, vLLM,
    Ollama), anthropic, azure-openai, gemini, vertex-ai or bedrock."""
    endpoint: Annotated[
        str,
        Field(
            max_length=2048,
            json_schema_extra=k8s(
                format="uri",
                **{
                    "x-kubernetes-validations": [
                        {
                            "rule": "isURL(self) && (url(self).getScheme() == 'https' || "
                            "(url(self).getScheme() == 'http' && (url(self).getHostname() in "
                            "['localhost', '127.0.0.1', '::1'] || "
                            "url(self).getHostname().endsWith('.svc') || "
                            "url(self).getHostname().endsWith('.svc.cluster.local'))))",
                            "message": "must be an https:// URL (http:// only for loopback or "
                            "cluster-local .svc hosts)",
                        }
                    ]
                },
            ),
        ),
    ]
    """Base URL of the API, e.g. https://api.mistral.ai/v1."""
    residency: ProviderResidency = ProviderResidency()
    """Where inference runs and who operates the provider; used to enforce routes' residency."""
    auth: Auth
    """Credentials the sidecar uses; keys stay in Secrets and are never put in ConfigMaps."""
    models: Annotated[
        list[ProviderModel],
        Field(
            min_length=1,
            max_length=512,
            json_schema_extra=k8s(
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
            ),
        ),
    ]
    """Models served by this provider that routes may target."""
    options: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=32
    )
    """Settings of the provider's API: apiVersion (azure-openai); project, location and
    apiVersion (vertex-ai); region and inferenceProfileLocation (bedrock). Unknown names
    are refused."""

    def model(self, name: str) -> ProviderModel | None:
        return next((m for m in self.models if m.name == name), None)


class AIProviderStatus(ObjectStatus):
    used_by: list[str] = Field(default_factory=list)
    """Routes using this provider, as namespace/name."""
    models: int = 0
    """Number of models declared."""
