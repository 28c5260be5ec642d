"""AIRoute (namespaced): what an app's ``model`` name resolves to, owned by app teams."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from aiguillage.operator.api.common import (
    ApiModel,
    CountryOrGroup,
    Matching,
    ObjectName,
    ObjectStatus,
    k8s,
)
from aiguillage.operator.api.dataprotection import DataProtectionSpec
from aiguillage.operator.api.durations import PATTERN as DURATION
from aiguillage.sidecar.config import (
    LARGEST_EVENT_LIMIT,
    LARGEST_RESPONSE_LIMIT,
    SMALLEST_LIMIT,
    SizeLimits,
    Strategy,
)

Duration = Annotated[
    str, Matching(DURATION, "must be a duration such as 250ms, 5s, 2m or 1h30m", 32)
]


class RouteResidency(ApiModel):
    """Where requests on this route may be processed. Both lists given = both must hold."""

    locations: Annotated[list[CountryOrGroup], Field(max_length=64)] | None = None
    """Allowed provider locations: country codes or the groups EU (27 member states) and
    EEA (EU plus IS, LI, NO)."""
    jurisdictions: Annotated[list[CountryOrGroup], Field(max_length=64)] | None = None
    """Allowed legal homes of provider operators: country codes, EU or EEA."""


class RouteTarget(ApiModel):
    """A provider model requests may go to."""

    provider: ObjectName
    """Name of an AIProvider."""
    model: str = Field(min_length=1, max_length=253)
    """One of that provider's models."""
    priority: int = Field(default=0, ge=0)
    """Tier for the priority strategy: lower tiers are tried first."""
    weight: int = Field(default=1, ge=0)
    """Share of traffic within a tier (priority) or overall (weighted)."""


class Backoff(ApiModel):
    """Exponential backoff with jitter between tries on one target."""

    base: Duration = "100ms"
    """Delay before the first retry; doubles each time."""
    max: Duration = "2s"
    """Upper bound for one delay."""


class RetryPolicy(ApiModel):
    """Retries on the same target before failing over to the next one."""

    attempts: int = Field(default=1, ge=1, le=10)
    """Tries per target, the first included."""
    backoff: Backoff = Backoff()
    """Delay between tries; a provider's Retry-After is honoured."""


class RouteTimeouts(ApiModel):
    """Deadlines for one request."""

    connect: Duration = "5s"
    """Establishing the connection to a provider."""
    first_token: Duration = "30s"
    """From sending the request to the first response byte."""
    stream_idle: Duration = "30s"
    """Longest gap between two stream chunks."""
    total: Duration = "300s"
    """Whole request, all attempts included."""


class CircuitBreakerPolicy(ApiModel):
    """Stop sending to a target that keeps failing."""

    consecutive_failures: int = Field(default=5, ge=1)
    """Failures in a row that open the circuit."""
    cooldown: Duration = "30s"
    """How long the circuit stays open before one probe request is let through."""


class RouteSizeLimits(ApiModel):
    """How much of a provider's answer the sidecar reads, in bytes once decompressed."""

    max_response_bytes: int = Field(
        default=SizeLimits().max_response_bytes, ge=SMALLEST_LIMIT, le=LARGEST_RESPONSE_LIMIT
    )
    """Largest whole (not streamed) answer; a larger one fails the attempt, which fails over."""
    max_event_bytes: int = Field(
        default=SizeLimits().max_event_bytes, ge=SMALLEST_LIMIT, le=LARGEST_EVENT_LIMIT
    )
    """Largest line or event of a streamed answer; a larger one fails the attempt (or ends
    the stream with an error event once the client has received part of it)."""


class AIRouteSpec(ApiModel):
    """A model name apps can request, and the provider models that serve it."""

    model: str = Field(min_length=1, max_length=253)
    """The name apps put in the request's "model" field."""
    residency: RouteResidency | None = None
    """Where requests may be processed; targets outside it are never contacted."""
    strategy: Strategy = Strategy.PRIORITY
    """Order of targets: priority (tiers, weighted within a tier), weighted, cost (cheapest
    first) or latency (fastest observed first). All fall back through remaining targets."""
    targets: Annotated[
        list[RouteTarget],
        Field(
            min_length=1,
            max_length=64,
            # A map list keyed by (provider, model): the API server rejects duplicates.
            json_schema_extra=k8s(
                **{
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["provider", "model"],
                }
            ),
        ),
    ]
    """Provider models that can serve this route."""
    retry: RetryPolicy = RetryPolicy()
    """Retries per target."""
    timeouts: RouteTimeouts = RouteTimeouts()
    """Deadlines for each request."""
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    """Per-target circuit breaker."""
    size_limits: RouteSizeLimits = RouteSizeLimits()
    """Size limits on providers' answers."""
    data_protection: DataProtectionSpec | None = None
    """Personal data to look for and what to do with it, on top of the AIPolicies' rules:
    the strictest action wins, so a route can tighten them, never loosen them."""


class Spend(ApiModel):
    """Money spent in the current calendar month, against the smallest budget in force."""

    month_to_date_eur: str = ""
    """Euros spent this month (settled requests, every sidecar)."""
    budget_eur: str = ""
    """The smallest monthly budget of this scope imposed by an Enforce-mode AIPolicy."""
    budget_used_percent: int | None = None
    """Share of that budget spent, in percent."""


class RouteSpend(ApiModel):
    """Month-to-date spend read from the shared store the sidecars count in."""

    month: str = ""
    """The calendar month (YYYY-MM, in the shared store's time zone)."""
    route: Spend = Spend()
    """This route's spend and route budget."""
    namespace: Spend = Spend()
    """The whole namespace's spend and namespace budget."""
    aggregated: bool = False
    """True when the figures come from the shared store (every sidecar); false without
    one, when each sidecar counts on its own and nothing is aggregated."""
    as_of: str = ""
    """When the figures were read (RFC 3339)."""
    message: str = ""
    """Why figures are missing, if they are."""
    summary: str = ""
    """Short form for kubectl get, e.g. "1.20 EUR (12% of 10)"."""


class AIRouteStatus(ObjectStatus):
    config_hash: str = ""
    """Hash of the compiled config the namespace's sidecars are given."""
    targets: str = ""
    """Targets served out of targets declared, e.g. 2/3 (the others are never contacted)."""
    policies: list[str] = Field(default_factory=list)
    """AIPolicies selecting this route's namespace."""
    data_protection: str = ""
    """Data-protection rules in force for this route (policies' and its own), in short."""
    limits: str = ""
    """Rate limits and budgets in force for this route, in short."""
    spend: RouteSpend | None = None
    """Month-to-date spend and budget use, refreshed by the operator."""
