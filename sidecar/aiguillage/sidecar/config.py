"""The compiled sidecar configuration: the contract between operator and sidecar.

The operator compiles a namespace's AIProviders and AIRoutes into one
:class:`SidecarConfig` and writes it as ``config.json`` in ConfigMap
``aiguillage-config``; the sidecar reads it from its config directory. Keys
never appear here: a provider names its credential by file name, which the
sidecar reads from the credentials directory.

Everything is already resolved: durations are seconds, residency groups are
expanded into country sets, and each route's targets carry their pricing, so the
sidecar does no lookups beyond dictionaries on the hot path.

Cluster policies (AIPolicy) are compiled in too. What an Enforce-mode policy forbids is
simply absent (its targets are not in the route). What an Audit-mode policy would have
forbidden is served, each such target carrying :class:`PolicyFinding` entries for the
sidecar to record and count. Rate limits and budgets arrive as :class:`Limit` entries on
each route they apply to, and :class:`SharedStore` says where the counters that make
them hold across sidecars live (see :mod:`aiguillage.sidecar.limits.keys` for their keys).
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Literal, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from aiguillage.sidecar.privacy.rules import DataProtectionRules
from aiguillage.sidecar.residency import ResidencyRule

if TYPE_CHECKING:
    from aiguillage.sidecar.privacy.engine import DataProtectionEngine

CONFIG_FILE = "config.json"
SCHEMA_VERSION = 1
# A file name in the credentials directory: no "/", not "." or "..", so the sidecar never
# reads outside that directory.
CredentialFile = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class Strategy(StrEnum):
    PRIORITY = "priority"
    WEIGHTED = "weighted"
    COST = "cost"
    LATENCY = "latency"


class Pricing(_Model):
    """Price of one million tokens, in euros."""

    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)
    currency: Literal["EUR"] = "EUR"


class Provider(_Model):
    """One provider endpoint as the sidecar reaches it."""

    api: str
    endpoint: str
    location: str | None = None
    jurisdiction: str | None = None
    region: str | None = None
    # File name in the credentials directory holding the key; None = no auth.
    credential: CredentialFile | None = None
    # Adapter-specific settings (e.g. Azure api-version), strings only.
    options: dict[str, str] = Field(default_factory=dict)


class PolicyMode(StrEnum):
    """What an AIPolicy does with what it forbids."""

    ENFORCE = "Enforce"  # forbidden targets are left out; limits refuse requests
    AUDIT = "Audit"  # nothing is refused: what would have been is recorded and counted


class PolicyFinding(_Model):
    """An Audit-mode policy would have removed this target: the sidecar still uses it, and
    records (audit record) and counts (metrics) the finding whenever it does."""

    policy: str  # the AIPolicy's name
    # Why, naming the rule: 'provider "openai-us" is located in US, outside
    # residency.locations [EU]'.
    reason: str


class Target(_Model):
    provider: str
    model: str
    priority: int = Field(default=0, ge=0)
    weight: int = Field(default=1, ge=0)
    pricing: Pricing | None = None
    # Where this target processes data when the model id or endpoint overrides the
    # provider's declared location (see processing.py): a country, EU/EEA, or GLOBAL.
    location: str | None = None
    # Audit-mode policies that would have removed this target (empty: none would).
    policy_audit: tuple[PolicyFinding, ...] = ()

    def where(self, provider: Provider) -> str | None:
        """The location residency is checked against for this target."""
        return self.location or provider.location


class Residency(_Model):
    """A residency rule with groups already expanded to country codes."""

    locations: frozenset[str] | None = None
    jurisdictions: frozenset[str] | None = None

    @field_serializer("locations", "jurisdictions")
    def _sorted(self, value: frozenset[str] | None) -> list[str] | None:
        # Sorted so that the config's content hash is stable across processes.
        return None if value is None else sorted(value)

    def rule(self, source: str) -> ResidencyRule:
        return ResidencyRule(self.locations, self.jurisdictions, source)


class Retry(_Model):
    # Tries on one target (the first included) before failing over to the next.
    attempts: int = Field(default=1, ge=1, le=10)
    backoff_base: float = Field(default=0.1, gt=0)
    backoff_max: float = Field(default=2.0, gt=0)


class Timeouts(_Model):
    connect: float = Field(default=5.0, gt=0)
    first_token: float = Field(default=30.0, gt=0)
    stream_idle: float = Field(default=30.0, gt=0)
    total: float = Field(default=300.0, gt=0)


MIB = 1024 * 1024
# Bounds of the limits below (also those of the AIRoute fields they are compiled from).
SMALLEST_LIMIT = 1024
LARGEST_RESPONSE_LIMIT = 1024 * MIB
LARGEST_EVENT_LIMIT = 256 * MIB


class SizeLimits(_Model):
    """How much of a provider's answer the sidecar reads, in bytes once decompressed.

    A whole answer larger than ``max_response_bytes``, or one line or event of a stream
    larger than ``max_event_bytes``, fails the attempt (``response_too_large``): a
    provider cannot make the sidecar hold gigabytes, however its body is compressed.
    """

    max_response_bytes: int = Field(default=32 * MIB, ge=SMALLEST_LIMIT, le=LARGEST_RESPONSE_LIMIT)
    max_event_bytes: int = Field(default=8 * MIB, ge=SMALLEST_LIMIT, le=LARGEST_EVENT_LIMIT)


class CircuitBreaker(_Model):
    consecutive_failures: int = Field(default=5, ge=1)
    cooldown: float = Field(default=30.0, gt=0)


class LimitScope(StrEnum):
    """Which requests share one counter of a :class:`Limit`."""

    NAMESPACE = "namespace"  # one counter for the whole namespace (every route, every pod)
    ROUTE = "route"  # one counter per route of the namespace
    WORKLOAD = "workload"  # one per (namespace, service account) calling


class StoreFailure(StrEnum):
    """What a limit does while the shared store cannot be reached."""

    OPEN = "open"  # requests pass (counted locally, per sidecar, until the store is back)
    CLOSED = "closed"  # requests are refused (503 limits_unavailable) naming the limit


class _Limiting(Protocol):
    @property
    def requests_per_minute(self) -> int | None: ...
    @property
    def tokens_per_minute(self) -> int | None: ...
    @property
    def budget_eur_per_month(self) -> object: ...


LIMITS_NOTHING = "a limit needs requestsPerMinute, tokensPerMinute or budgetEurPerMonth"


def check_limits_something(limit: _Limiting) -> None:
    """Raise ValueError when ``limit`` (compiled, or as an AIPolicy writes it) limits nothing."""
    if (
        limit.requests_per_minute is None
        and limit.tokens_per_minute is None
        and limit.budget_eur_per_month is None
    ):
        raise ValueError(LIMITS_NOTHING)


class Limit(_Model):
    """A rate limit and/or monthly budget one AIPolicy imposes on a route.

    Every limit on a route applies: a request must pass them all. A namespace-scoped
    limit is repeated on each route of the namespace; as its counter's key depends only
    on the scope and its id (see :mod:`aiguillage.sidecar.limits.keys`), never on the
    route, all of them count into the same counter. Two policies limiting the same scope
    share its counter too (usage is a fact; each policy compares it to its own ceiling).
    """

    policy: str  # the AIPolicy imposing it, named in refusals: "AIPolicy team-budget"
    scope: LimitScope
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)  # input + output tokens
    # Cost of the requests of one calendar month (in SharedStore.time_zone), in euros.
    budget_eur_per_month: Decimal | None = Field(default=None, ge=0)
    mode: PolicyMode = PolicyMode.ENFORCE  # Audit: counted, exceeding is recorded, not refused
    # None: the default, closed for the budget and open for the rate limits.
    when_store_unavailable: StoreFailure | None = None

    @model_validator(mode="after")
    def _limits_something(self) -> Limit:
        check_limits_something(self)
        return self

    def on_store_failure(self, budget: bool) -> StoreFailure:
        """What this limit's budget (``budget``) or rate limits do without the store."""
        if self.when_store_unavailable is not None:
            return self.when_store_unavailable
        return StoreFailure.CLOSED if budget else StoreFailure.OPEN


_KEY_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SharedStore(_Model):
    """The Redis server the sidecars of the namespace keep their limit counters in.

    Without one, every sidecar counts on its own: limits then hold per sidecar only."""

    # redis://host:port/db or rediss:// (TLS). A user name may be given, never a password.
    url: str
    # File name in the credentials directory holding the password; None: no password.
    credential: CredentialFile | None = None
    # Prefix of every key, so that several installations can share one Redis.
    key_prefix: str = "aiguillage"
    # IANA time zone in which calendar months (budgets) begin and end.
    time_zone: str = "Europe/Paris"

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError as exc:
            raise ValueError(f"{url!r} is not a URL: {exc}") from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be redis://host:port/db or rediss://host:port/db")
        if parts.password is not None:
            raise ValueError("must not carry a password: give it in a credential file instead")
        if parts.path not in ("", "/") and not parts.path[1:].isdigit():
            raise ValueError(f"database {parts.path[1:]!r} must be a number, e.g. /0")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return url

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not _KEY_PREFIX.fullmatch(prefix):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-' (no ':')")
        return prefix

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Paris") from None
        return name


class Route(_Model):
    """What an app's ``model`` name resolves to."""

    name: str  # the AIRoute object's name
    generation: int = 0
    strategy: Strategy = Strategy.PRIORITY
    residency: Residency = Residency()
    targets: Annotated[tuple[Target, ...], Field(min_length=1)]
    retry: Retry = Retry()
    timeouts: Timeouts = Timeouts()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    # Personal data to look for and what to do with it per target; None: nothing is scanned.
    data_protection: DataProtectionRules | None = None
    size_limits: SizeLimits = SizeLimits()
    # Every rate limit and budget that applies to this route (from every policy selecting
    # its namespace); a request must pass them all. Empty: unlimited.
    limits: tuple[Limit, ...] = ()

    @cached_property
    def protection(self) -> DataProtectionEngine | None:
        """The route's compiled data-protection engine, or None without rules. Compiling
        imports the detection libraries the rules need: do it when the config is loaded."""
        if self.data_protection is None:
            return None
        from aiguillage.sidecar.privacy.engine import DataProtectionEngine

        return DataProtectionEngine(self.data_protection)

    @cached_property
    def rule(self) -> ResidencyRule:
        """The route's residency rule, built once per loaded config (not per request)."""
        return self.residency.rule(f"route {self.name}")

    @cached_property
    def static_order(self) -> tuple[Target, ...] | None:
        """The trying order when no strategy choice is left to make at run time (each
        priority tier holds one target), else None."""
        if self.strategy is not Strategy.PRIORITY:
            return None
        tiers = [t.priority for t in self.targets]
        if len(set(tiers)) != len(tiers):
            return None
        return tuple(sorted(self.targets, key=lambda t: t.priority))


class SidecarConfig(_Model):
    version: Literal[1] = 1
    namespace: str
    # sha256 of the canonical JSON of everything but this field (see content_hash).
    hash: str = ""
    providers: dict[str, Provider] = Field(default_factory=dict)
    # Keyed by the public model name apps send.
    routes: dict[str, Route] = Field(default_factory=dict)
    # Where limits are counted across sidecars; None: each sidecar counts alone.
    shared_store: SharedStore | None = None

    def content_hash(self) -> str:
        body = self.model_dump(mode="json", by_alias=True, exclude={"hash"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def sealed(self) -> SidecarConfig:
        """A copy carrying its content hash."""
        return self.model_copy(update={"hash": self.content_hash()})

    def to_json(self) -> bytes:
        body = self.model_dump(mode="json", by_alias=True)
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
