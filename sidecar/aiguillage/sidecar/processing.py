"""Where a target really processes data, when the model id or endpoint says more than the
provider's declared location.

A provider declares one location, but some model ids and endpoints route requests
elsewhere: an AWS Bedrock cross-region inference profile ``us.…`` runs in US regions
and ``global.…`` anywhere, whatever region the endpoint is in; a Vertex AI ``global``
location is served from any region. The operator compiles the result into each
target (``Target.location``) so the sidecar's check before every attempt uses it.
Pure functions, one per provider API that has such a rule, looked up in one table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal
from urllib.parse import urlsplit

from aiguillage.sidecar.residency import ANYWHERE

Scope = Literal["EU", "US", "GLOBAL"]
_PROFILE_SCOPES: dict[str, Scope] = {"eu": "EU", "us": "US", "us-gov": "US", "global": "GLOBAL"}


def profile_region_scope(model_id: str) -> Scope | None:
    """Where a Bedrock cross-region inference profile may process requests, from its id or ARN.

    ``eu.*`` stays in EU regions, ``us.*`` (and ``us-gov.*``) in US regions, ``global.*``
    anywhere. None for a plain model id (processed in the endpoint's own region) and for
    other geographies (``apac.``...).
    """
    resource = (
        model_id.rpartition(":inference-profile/")[2] if model_id.startswith("arn:") else model_id
    )
    prefix, dot, _ = resource.partition(".")
    return _PROFILE_SCOPES.get(prefix) if dot else None


def _bedrock(endpoint: str, options: Mapping[str, str], model: str) -> str | None:
    scope = profile_region_scope(model)
    return ANYWHERE if scope == "GLOBAL" else scope


def _vertex(endpoint: str, options: Mapping[str, str], model: str) -> str | None:
    host = urlsplit(endpoint).hostname or ""
    if options.get("location") == "global" or host == "aiplatform.googleapis.com":
        return ANYWHERE
    return None


SCOPES: dict[str, Callable[[str, Mapping[str, str], str], str | None]] = {
    "bedrock": _bedrock,
    "vertex-ai": _vertex,
}


def processing_location(
    api: str, endpoint: str, options: Mapping[str, str], model: str
) -> str | None:
    """A location overriding the provider's declared one for this model, or None."""
    scope = SCOPES.get(api)
    return scope(endpoint, options, model) if scope else None
