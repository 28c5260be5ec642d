"""What each provider API accepts in ``Provider.options``: one small model per API.

This module is the single answer to "is this provider usable as written?" for every part
of the product: the sidecar's loader (a provider that fails is marked unusable and only its
targets are skipped), the adapters' constructors (they read their settings from these
models), and the operator's render, status conditions, admission webhook and the CRD's CEL
rules (generated from the required fields below). It imports no adapter module, so the
operator can ask without loading botocore.

Options are strings keyed by camelCase names. Unknown names are refused (a typo such as
``apiversion`` would otherwise be silently ignored); so are values of the wrong shape, and
settings that contradict the endpoint (a Vertex AI ``location`` other than the one its host
serves, a Bedrock ``region`` other than its host's: requests would fail or be signed for
the wrong region).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from aiguillage.sidecar.errors import ConfigError

_BEDROCK_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")
_VERTEX_REGIONAL = re.compile(r"^([a-z0-9-]+)-aiplatform\.googleapis\.com$")
_VERTEX_MULTI_REGIONAL = re.compile(r"^aiplatform\.([a-z0-9-]+)\.rep\.googleapis\.com$")


def bedrock_region_of_host(host: str) -> str | None:
    """The AWS region a ``bedrock-runtime.<region>.amazonaws.com`` host serves."""
    match = _BEDROCK_HOST.match(host)
    return match.group(1) if match else None


def vertex_location_of_host(host: str) -> str | None:
    """The Vertex AI location an endpoint host serves, if the host says so."""
    if host == "aiplatform.googleapis.com":
        return "global"
    match = _VERTEX_REGIONAL.match(host) or _VERTEX_MULTI_REGIONAL.match(host)
    return match.group(1) if match else None


def host_of(endpoint: str) -> str:
    """The endpoint's host name, or "" when it has none (or is no URL)."""
    try:
        return urlsplit(endpoint).hostname or ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class OptionProblem:
    """One thing wrong with a provider, by field relative to the provider (``options.x``)."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidOptions(ConfigError):
    """A provider's options (or endpoint) cannot be used; ``problems`` says each why."""

    def __init__(self, problems: list[OptionProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _agrees_with_host(
    name: str, given: str | None, from_host: str | None, required: str
) -> list[OptionProblem]:
    """An option the endpoint's host may also name: needed from one of them, and both must
    agree (requests go to the host; the option decides signing or the URL's path)."""
    if given is None and from_host is None:
        return [OptionProblem(f"options.{name}", required)]
    if given is not None and from_host is not None and given != from_host:
        reason = f'"{given}" does not match the endpoint\'s {name} "{from_host}"'
        return [OptionProblem(f"options.{name}", reason)]
    return []


def _matching(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


class Options(BaseModel):
    """Base of every API's options; as it is, the options of an API that takes none."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=False
    )

    def endpoint_problems(self, host: str) -> list[OptionProblem]:
        """Problems only visible together with the endpoint's host."""
        return []


class AzureOpenAIOptions(Options):
    api_version: Annotated[
        str,
        _matching(r"\d{4}-\d{2}-\d{2}(-[a-z]+)?", "must be an API version such as 2024-10-21"),
    ] = "2024-10-21"


_LOCATION = _matching(r"[a-z][a-z0-9-]{0,62}", "must be a location such as europe-west4")


class VertexAIOptions(Options):
    project: Annotated[
        str,
        _matching(r"[a-z0-9][a-z0-9.:-]{0,127}", "must be a Google Cloud project id"),
    ]
    location: (
        Annotated[
            str, _matching(r"[a-z][a-z0-9-]{0,62}", "must be a location such as europe-west4")
        ]
        | None
    ) = None
    api_version: Annotated[str, _matching(r"v[0-9][a-z0-9]*", "must be such as v1")] = "v1"

    def location_at(self, host: str) -> str | None:
        return self.location or vertex_location_of_host(host)

    def endpoint_problems(self, host: str) -> list[OptionProblem]:
        return _agrees_with_host(
            "location",
            self.location,
            vertex_location_of_host(host),
            "is required for api vertex-ai (the endpoint host does not name one)",
        )


_REGION = _matching(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]+", "must be an AWS region such as eu-west-3")
_PLACE = _matching(r"[A-Z]{2}|EU|EEA", "must be a country code in capitals (e.g. FR), EU or EEA")


class BedrockOptions(Options):
    region: Annotated[str, _REGION] | None = None
    # Where an application inference profile processes data: its ARN does not say (it may
    # wrap a cross-region profile), so it is unknown unless declared here.
    inference_profile_location: Annotated[str, _PLACE] | None = None

    def region_at(self, host: str) -> str | None:
        return self.region or bedrock_region_of_host(host)

    def endpoint_problems(self, host: str) -> list[OptionProblem]:
        return _agrees_with_host(
            "region",
            self.region,
            bedrock_region_of_host(host),
            "is required for api bedrock (the endpoint is not "
            "bedrock-runtime.<region>.amazonaws.com)",
        )


# api -> its options model; every api of :data:`aiguillage.sidecar.adapters.MODULES` is here.
OPTIONS: dict[str, type[Options]] = {
    "openai": Options,
    "anthropic": Options,
    "gemini": Options,
    "azure-openai": AzureOpenAIOptions,
    "vertex-ai": VertexAIOptions,
    "bedrock": BedrockOptions,
}


def _problems_of(exc: ValidationError, api: str, model: type[Options]) -> list[OptionProblem]:
    known = ", ".join(f.alias or name for name, f in model.model_fields.items()) or "none"
    out = []
    for err in exc.errors():
        field = "options." + ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            reason = f"is required for api {api}"
        elif err["type"] == "extra_forbidden":
            reason = f"is not an option of api {api} (it takes: {known})"
        else:
            reason = err["msg"].removeprefix("Value error, ")
        out.append(OptionProblem(field, reason))
    return out


def _endpoint_problem(endpoint: str) -> OptionProblem | None:
    try:
        parts = urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an invalid IPv6 literal or port
        ok = False
    if not ok:
        return OptionProblem("endpoint", "must be an http:// or https:// URL with a host")
    return None


def parse_options(api: str, endpoint: str, options: Mapping[str, str]) -> Any:
    """The validated options of a provider of ``api`` at ``endpoint``; InvalidOptions if not.

    Typed ``Any`` so each adapter can annotate the model it knows it gets.
    """
    model = OPTIONS.get(api, Options)
    problems: list[OptionProblem] = []
    bad_endpoint = _endpoint_problem(endpoint)
    if bad_endpoint is not None:
        problems.append(bad_endpoint)
    parsed: Options | None = None
    try:
        parsed = model.model_validate(dict(options))
    except ValidationError as exc:
        problems += _problems_of(exc, api, model)
    if parsed is not None and bad_endpoint is None:
        problems += parsed.endpoint_problems(host_of(endpoint))
    if problems:
        raise InvalidOptions(problems)
    return parsed


def options_problems(api: str, endpoint: str, options: Mapping[str, str]) -> list[OptionProblem]:
    """Everything wrong with a provider's endpoint and options ([] if usable)."""
    try:
        parse_options(api, endpoint, options)
    except InvalidOptions as exc:
        return exc.problems
    return []


def required_options(api: str) -> list[str]:
    """Option names a provider of ``api`` must always give (for the CRD's CEL rules)."""
    model = OPTIONS.get(api, Options)
    return [f.alias or n for n, f in model.model_fields.items() if f.is_required()]


def option_names(api: str) -> list[str]:
    """Every option name ``api`` takes (for the CRD's CEL rules)."""
    model = OPTIONS.get(api, Options)
    return [f.alias or n for n, f in model.model_fields.items()]
