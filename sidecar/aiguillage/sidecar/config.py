"""The compiled sidecar configuration: the contract between operator and sidecar.

The operator compiles a namespace's AIProviders and AIRoutes into one
:class:`SidecarConfig` and writes it as ``config.json`` in ConfigMap
``aiguillage-config``; the sidecar reads it from its config directory. Keys
never appear here: a provider names its credential by file name, which the
sidecar reads from the credentials directory.

Everything is already resolved: durations are seconds, residency groups are
expanded into country sets, and each route's targets carry their pricing, so the
sidecar does no lookups beyond dictionaries on the hot path.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from aiguillage.sidecar.privacy.rules import DataProtectionRules
from aiguillage.sidecar.residency import ResidencyRule

if TYPE_CHECKING:
    from aiguillage.sidecar.privacy.engine import DataProtectionEngine

CONFIG_FILE = "config.json"
SCHEMA_VERSION = 1


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
    # File name in the credentials directory holding the key; None = no auth. A plain
    # name (no "/", not "." or ".."): the sidecar never reads outside that directory.
    credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")] | None = None
    # Adapter-specific settings (e.g. Azure api-version), strings only.
    options: dict[str, str] = Field(default_factory=dict)


class Target(_Model):
    provider: str
    model: str
    priority: int = Field(default=0, ge=0)
    weight: int = Field(default=1, ge=0)
    pricing: Pricing | None = None
    # Where this target processes data when the model id or endpoint overrides the
    # provider's declared location (see processing.py): a country, EU/EEA, or GLOBAL.
    location: str | None = None

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

    def content_hash(self) -> str:
        body = self.model_dump(mode="json", by_alias=True, exclude={"hash"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def sealed(self) -> SidecarConfig:
        """A copy carrying its content hash."""
        return self.model_copy(update={"hash": self.content_hash()})

    def to_json(self) -> bytes:
        body = self.model_dump(mode="json", by_alias=True)
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
