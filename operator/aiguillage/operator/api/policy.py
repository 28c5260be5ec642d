"""AIPolicy (cluster-scoped): the platform team's guardrail over the namespaces it selects.

What a policy may say, and how several combine (see :mod:`aiguillage.operator.policies`
for the combination itself): residency and providers narrow which targets routes may use;
limits and budgets add up (every one applies); data-protection rules add up too, the
strictest action winning per category and target. ``mode: Audit`` refuses nothing and
records what Enforce would have refused.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from aiguillage.operator.api.common import ApiModel, ObjectName, ObjectStatus, SecretKeyRef, k8s
from aiguillage.operator.api.dataprotection import DataProtectionSpec
from aiguillage.operator.api.provider import Price
from aiguillage.operator.api.route import RouteResidency
from aiguillage.operator.api.selector import LabelSelector
from aiguillage.sidecar.config import (
    LIMITS_NOTHING,
    LimitScope,
    PolicyMode,
    StoreFailure,
    check_limits_something,
)


class PolicyResidency(RouteResidency):
    """Where requests in the selected namespaces may be processed, whatever the routes say.
    Both lists given = both must hold. Several policies: every one must hold."""


class ProviderRules(ApiModel):
    """Which AIProviders routes in the selected namespaces may use, by name."""

    allowed: Annotated[list[ObjectName], Field(max_length=256)] | None = None
    """Only these providers may be used (absent: any provider not denied)."""
    denied: Annotated[list[ObjectName], Field(max_length=256)] = Field(default_factory=list)
    """These providers may never be used."""


_SOMETHING_LIMITED = {
    "rule": "has(self.requestsPerMinute) || has(self.tokensPerMinute) || "
    "has(self.budgetEurPerMonth)",
    "message": LIMITS_NOTHING,
}


class PolicyLimit(ApiModel):
    """Rate limits and a monthly budget, counted per namespace, route or workload."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": k8s(**{"x-kubernetes-validations": [_SOMETHING_LIMITED]})
    }
    per: LimitScope
    """What shares one counter: namespace (all of it), route (each route on its own) or
    workload (each service account calling, per namespace)."""
    requests_per_minute: int | None = Field(default=None, ge=1, le=10_000_000)
    """Requests allowed per minute."""
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10_000_000_000)
    """Tokens (input + output) allowed per minute."""
    budget_eur_per_month: Price | None = None
    """Euros that may be spent per calendar month (in the shared store's time zone), as a
    decimal string such as "500" or "49.90"."""
    when_store_unavailable: StoreFailure | None = None
    """While the shared store (Redis) cannot be reached: open (let requests through) or
    closed (refuse them). Absent: sharedStore.whenUnavailable of the policies, else closed
    for budgets and open for rate limits. Several settings: closed wins."""

    @model_validator(mode="after")
    def _limits_something(self) -> PolicyLimit:
        check_limits_something(self)
        return self


class StoreFailureDefaults(ApiModel):
    """What limits without their own whenStoreUnavailable do while the store is unreachable,
    in every namespace this policy selects."""

    budgets: StoreFailure | None = None
    """open or closed for budgets (absent: closed)."""
    rate_limits: StoreFailure | None = None
    """open or closed for rate limits (absent: open)."""


_REDIS_URL = {
    "rule": "self.matches('^rediss?://[^/?#]+(/[0-9]+)?/?$') && "
    "!self.matches('^rediss?://[^/@]*:[^/@]*@')",
    "message": "must be redis://host:port/db or rediss://host:port/db, without a password "
    "(give it in passwordSecretRef)",
}


class SharedStoreSpec(ApiModel):
    """The Redis server where the sidecars keep limit and budget counters, so limits hold
    across every pod. Without one, each sidecar counts on its own."""

    url: str = Field(
        max_length=512, json_schema_extra=k8s(**{"x-kubernetes-validations": [_REDIS_URL]})
    )
    """redis://host:port/db or rediss://host:port/db (TLS), e.g.
    redis://redis.aiguillage-system.svc:6379/0. A user name may be given, a password not."""
    password_secret_ref: SecretKeyRef | None = None
    """The Secret (in the operator's namespace) and key holding the password, copied into
    the selected namespaces' credentials Secret."""
    key_prefix: str = Field(default="aiguillage", min_length=1, max_length=64)
    """Prefix of every key, so several installations can share one Redis."""
    time_zone: str = Field(default="Europe/Paris", min_length=1, max_length=64)
    """IANA time zone in which budget months begin and end."""
    when_unavailable: StoreFailureDefaults | None = None
    """What limits do while the store cannot be reached, unless they say themselves."""


class AIPolicySpec(ApiModel):
    """Rules the platform team imposes on every route of the namespaces it selects."""

    namespace_selector: LabelSelector
    """Namespaces this policy applies to, by label ({} selects every namespace)."""
    mode: PolicyMode = PolicyMode.ENFORCE
    """Enforce: forbidden targets are removed and refused at admission, limits refuse
    requests. Audit: nothing is refused; what would have been is recorded and counted."""
    residency: PolicyResidency | None = None
    """Where requests may be processed; intersected with each route's own residency."""
    providers: ProviderRules | None = None
    """Which providers may be used."""
    limits: Annotated[list[PolicyLimit], Field(max_length=16)] = Field(default_factory=list)
    """Rate limits and budgets; every limit of every policy applies."""
    data_protection: DataProtectionSpec | None = None
    """Personal data to look for and the action per category and target."""
    shared_store: SharedStoreSpec | None = None
    """Where limits are counted across sidecars (Redis)."""


class AIPolicyStatus(ObjectStatus):
    selector: str = ""
    """The namespace selector in kubectl's form (* = every namespace)."""
    selected_namespaces: int = 0
    """Number of namespaces the selector matches."""
    matched_routes: int = 0
    """Number of AIRoutes in those namespaces."""
    residency: str = ""
    """What the policy allows for residency, in short."""
    providers: str = ""
    """Providers allowed and denied, in short."""
    limits: str = ""
    """Rate limits and budgets, in short."""
    data_protection: str = ""
    """Data-protection rules, in short."""
