"""Where a target really processes data, derived from what its provider's API makes knowable.

A provider declares one location, but for some APIs the request itself says where it is
processed, and that wins over any declaration:

- AWS Bedrock: the endpoint host ``bedrock-runtime.<region>.amazonaws.com`` or
  ``options.region`` names the region (a table maps regions to countries); a model id
  ``eu.``/``us.``/``apac.``/``global.``… is a cross-region inference profile processed
  anywhere in that geography, whatever the endpoint's region; an *application* inference
  profile ARN may wrap any of those, so it is UNKNOWN unless the provider declares
  ``options.inferenceProfileLocation``.
- Vertex AI: the host ``<location>-aiplatform.googleapis.com`` or ``options.location``
  names the location (a table maps locations to countries); ``aiplatform.googleapis.com``
  and location ``global`` process anywhere; the ``eu``/``us`` multi-regions in that group.
- Azure OpenAI: a deployment's type (Standard, DataZone, Global) is not visible in its URL,
  so nothing is derived: the declaration is all there is.

One :class:`Derivation` per API, looked up in :data:`DERIVATIONS` (APIs absent from it derive
nothing). The operator compiles the result into the config (the provider's location, and
``Target.location`` where a model id says more), refuses declarations that contradict it
(admission, render, status), and the sidecar's loader derives again, so a config written by
an older operator or by hand is checked the same way before every attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiguillage.sidecar.adapters.options import (
    OptionProblem,
    bedrock_region_of_host,
    host_of,
    vertex_location_of_host,
)
from aiguillage.sidecar.residency import ANYWHERE, GROUPS, UNKNOWN

# AWS region -> country where it runs (regions not listed derive nothing).
AWS_REGIONS: dict[str, str] = {
    "us-east-1": "US", "us-east-2": "US", "us-west-1": "US", "us-west-2": "US",
    "us-gov-east-1": "US", "us-gov-west-1": "US", "ca-central-1": "CA", "ca-west-1": "CA",
    "mx-central-1": "MX", "sa-east-1": "BR",
    "eu-west-1": "IE", "eu-west-2": "GB", "eu-west-3": "FR", "eu-central-1": "DE",
    "eu-central-2": "CH", "eu-north-1": "SE", "eu-south-1": "IT", "eu-south-2": "ES",
    "ap-northeast-1": "JP", "ap-northeast-2": "KR", "ap-northeast-3": "JP",
    "ap-southeast-1": "SG", "ap-southeast-2": "AU", "ap-southeast-3": "ID",
    "ap-southeast-4": "AU", "ap-southeast-5": "MY", "ap-southeast-7": "TH",
    "ap-south-1": "IN", "ap-south-2": "IN", "ap-east-1": "HK", "ap-east-2": "TW",
    "me-south-1": "BH", "me-central-1": "AE", "il-central-1": "IL", "af-south-1": "ZA",
}  # fmt: skip

# Bedrock cross-region inference profile prefix -> where it may process requests.
BEDROCK_PROFILES: dict[str, str] = {
    "eu": "EU", "us": "US", "us-gov": "US", "global": ANYWHERE,
    "apac": "APAC", "jp": "JP", "au": "AU",
}  # fmt: skip

# Vertex AI location -> country (or group) where it runs (locations not listed derive nothing).
VERTEX_LOCATIONS: dict[str, str] = {
    "global": ANYWHERE, "eu": "EU", "us": "US",
    "us-central1": "US", "us-east1": "US", "us-east4": "US", "us-east5": "US",
    "us-south1": "US", "us-west1": "US", "us-west2": "US", "us-west3": "US", "us-west4": "US",
    "northamerica-northeast1": "CA", "northamerica-northeast2": "CA",
    "southamerica-east1": "BR", "southamerica-west1": "CL",
    "europe-west1": "BE", "europe-west2": "GB", "europe-west3": "DE", "europe-west4": "NL",
    "europe-west6": "CH", "europe-west8": "IT", "europe-west9": "FR", "europe-west10": "DE",
    "europe-west12": "IT", "europe-north1": "FI", "europe-north2": "SE",
    "europe-central2": "PL", "europe-southwest1": "ES",
    "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP", "asia-northeast2": "JP",
    "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN",
    "asia-southeast1": "SG", "asia-southeast2": "ID",
    "australia-southeast1": "AU", "australia-southeast2": "AU",
    "me-central1": "QA", "me-central2": "SA", "me-west1": "IL", "africa-south1": "ZA",
}  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """Where requests are processed, and what says so (for status and error messages)."""

    location: str  # a country code, EU/EEA, another geography (APAC), GLOBAL or UNKNOWN
    source: str  # e.g. "its endpoint is in AWS region us-east-1"


class Derivation:
    """What one provider API makes knowable; this base derives nothing."""

    def endpoint(self, host: str, options: Mapping[str, str]) -> Evidence | None:
        """Where every request to this endpoint is processed, if the endpoint says."""
        return None

    def model(self, host: str, options: Mapping[str, str], model: str) -> Evidence | None:
        """Where requests for ``model`` are processed, when the model id says more."""
        return None


def _from_table(
    option: str,
    options: Mapping[str, str],
    from_host: str | None,
    table: Mapping[str, str],
    what: str,
) -> Evidence | None:
    """Evidence from a region or location named by an option, else by the endpoint's host,
    looked up in ``table`` (one it does not list says nothing)."""
    name = options.get(option)
    where = f"options.{option} is"
    if not name:
        name, where = from_host, "its endpoint is in"
    place = table.get(name or "")
    return None if place is None else Evidence(place, f"{where} {what} {name}")


class BedrockDerivation(Derivation):
    def endpoint(self, host: str, options: Mapping[str, str]) -> Evidence | None:
        region = bedrock_region_of_host(host)
        return _from_table("region", options, region, AWS_REGIONS, "AWS region")

    def model(self, host: str, options: Mapping[str, str], model: str) -> Evidence | None:
        if model.startswith("arn:"):
            # arn:aws:bedrock:<region>:<account>:<type>/<id>
            fields = model.split(":", 5)
            kind, _, resource = (fields[5] if len(fields) == 6 else "").partition("/")
            if kind == "application-inference-profile":
                declared = options.get("inferenceProfileLocation")
                if declared:
                    return Evidence(
                        declared,
                        f'model "{model}" is an application inference profile declared in '
                        f"options.inferenceProfileLocation as {declared}",
                    )
                return Evidence(
                    UNKNOWN,
                    f'model "{model}" is an application inference profile, which may wrap a '
                    "cross-region profile (declare options.inferenceProfileLocation)",
                )
            if kind != "inference-profile":
                return None  # a foundation, custom or provisioned model: in the endpoint's region
            model = resource
        prefix, dot, _ = model.partition(".")
        scope = BEDROCK_PROFILES.get(prefix) if dot else None
        if scope is None:
            return None
        return Evidence(scope, f'model "{model}" is a {prefix}. cross-region inference profile')


class VertexDerivation(Derivation):
    def endpoint(self, host: str, options: Mapping[str, str]) -> Evidence | None:
        location = vertex_location_of_host(host)
        return _from_table("location", options, location, VERTEX_LOCATIONS, "Vertex AI location")


DERIVATIONS: dict[str, Derivation] = {
    "bedrock": BedrockDerivation(),
    "vertex-ai": VertexDerivation(),
}
_NOTHING = Derivation()


def endpoint_evidence(api: str, endpoint: str, options: Mapping[str, str]) -> Evidence | None:
    """Where a provider's endpoint processes every request, if its API makes it knowable."""
    return DERIVATIONS.get(api, _NOTHING).endpoint(host_of(endpoint), options)


def model_evidence(
    api: str, endpoint: str, options: Mapping[str, str], model: str
) -> Evidence | None:
    """Where one model of a provider processes requests, when its id says more than the
    endpoint (a cross-region or application inference profile)."""
    return DERIVATIONS.get(api, _NOTHING).model(host_of(endpoint), options, model)


def provider_location(
    declared: str | None, api: str, endpoint: str, options: Mapping[str, str]
) -> str | None:
    """The location residency is checked against for a provider: what its endpoint says when
    it says anything, else what the provider declares."""
    evidence = endpoint_evidence(api, endpoint, options)
    return evidence.location if evidence else declared


def processing_location(
    api: str, endpoint: str, options: Mapping[str, str], model: str
) -> str | None:
    """A location overriding the provider's for this model (``Target.location``), or None."""
    evidence = model_evidence(api, endpoint, options, model)
    return evidence.location if evidence else None


def within(place: str, declared: str) -> bool:
    """Is ``place`` inside what ``declared`` claims (equal, or a country of a declared group,
    or EU inside a declared EEA)?"""
    if place == declared:
        return True
    group = GROUPS.get(declared)
    if group is None:
        return False
    return place in group or (place in GROUPS and GROUPS[place] <= group)


def contradiction(
    declared: str | None, api: str, endpoint: str, options: Mapping[str, str]
) -> OptionProblem | None:
    """A declared location the endpoint contradicts (declared FR, endpoint in us-east-1)."""
    evidence = endpoint_evidence(api, endpoint, options)
    if declared is None or evidence is None or within(evidence.location, declared):
        return None
    return OptionProblem(
        "residency.location",
        f'"{declared}" contradicts where the endpoint processes data: {evidence.source}, '
        f"which is {_place(evidence.location)}",
    )


def _place(location: str) -> str:
    if location == ANYWHERE:
        return "any region in the world"
    if location in GROUPS:
        return f"anywhere in {location}"
    return location
