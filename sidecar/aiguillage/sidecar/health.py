"""What the sidecar has learnt about each target: circuit breaker and latency.

Kept per (provider, model) and across config reloads, so a reload does not
forget that a provider is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiguillage.sidecar.config import CircuitBreaker

LATENCY_SMOOTHING = 0.2  # weight of the newest sample in the moving average


@dataclass(slots=True)
class TargetHealth:
    failures: int = 0  # consecutive
    opened_at: float | None = None
    probing: bool = False
    latency: float | None = None  # exponentially weighted moving average, seconds

    def allow(self, now: float, policy: CircuitBreaker) -> bool:
        """May a request go to this target now? Lets one probe through after cooldown."""
        if self.opened_at is None:
            return True
        if self.probing or now - self.opened_at < policy.cooldown:
            return False
        self.probing = True
        return True

    def succeeded(self, latency: float) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False
        self.latency = (
            latency
            if self.latency is None
            else self.latency + LATENCY_SMOOTHING * (latency - self.latency)
        )

    def release(self) -> None:
        """An attempt ended without saying anything about the target's health (the provider
        rejected the request itself, or the attempt was cancelled): let the next one probe."""
        self.probing = False

    def failed(self, now: float, policy: CircuitBreaker) -> None:
        self.failures += 1
        if self.probing or self.failures >= policy.consecutive_failures:
            self.opened_at = now
        self.probing = False

    @property
    def state(self) -> str:
        return "closed" if self.opened_at is None else ("half_open" if self.probing else "open")


@dataclass
class HealthBoard:
    targets: dict[tuple[str, str], TargetHealth] = field(default_factory=dict)

    def of(self, provider: str, model: str) -> TargetHealth:
        key = (provider, model)
        health = self.targets.get(key)
        if health is None:
            health = self.targets[key] = TargetHealth()
        return health
