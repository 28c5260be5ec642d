"""Send one client request along its route: order, residency, retries, failover.

Invariants this module keeps (and the tests check):
- residency is decided before *every* attempt, from the provider's declared
  location and jurisdiction and the route's rule narrowed by the request headers;
  a non-compliant target is never contacted;
- data protection, when the route has rules, is applied right after, for that target
  (:mod:`aiguillage.sidecar.protection`): a target a ``block`` rule keeps the request from
  is skipped (``skipped_personal_data``) and never contacted, and every attempt records
  the counts of what its target received;
- failover happens only before the first byte reaches the client; once a stream
  has started, a failure ends it with an error event and the request is failed;
- every target considered appears in the audit record, with what happened to it;
- what a provider said leaves the sidecar (an attempt's detail, a relayed error body) only
  with the config's credentials scrubbed out (:mod:`aiguillage.sidecar.redact`).

Which failures are retried on the same target and which only fail over is decided by the
error's type (see :mod:`aiguillage.sidecar.errors`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from aiguillage.sidecar import routing
from aiguillage.sidecar.adapters import UnsupportedApi
from aiguillage.sidecar.adapters.base import Adapter, Call, Usage
from aiguillage.sidecar.audit import AttemptRecord, AuditRecord
from aiguillage.sidecar.config import Provider, Route, Target
from aiguillage.sidecar.deadline import Deadline
from aiguillage.sidecar.errors import AttemptError, SidecarError, UpstreamStatus
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.privacy.errors import PersonalDataBlocked
from aiguillage.sidecar.privacy.findings import FindingsSummary
from aiguillage.sidecar.protection import RequestProtection
from aiguillage.sidecar.redact import Redactor, redactor_for
from aiguillage.sidecar.residency import ResidencyRule

T = TypeVar("T")
MILLION = Decimal(1_000_000)


class NoCompliantTarget(SidecarError):
    """No target of the route complies with the residency in force."""


class AllAttemptsFailed(SidecarError):
    """Every usable target was tried (or skipped) and none answered."""


class RelayedClientError(SidecarError):
    """The provider refused the request itself (4xx other than 401/403/408/409/429):
    trying elsewhere would not help, so the client gets the provider's answer."""

    def __init__(self, error: UpstreamStatus) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Chosen:
    """The target that answered, for response headers and accounting."""

    target: Target
    provider: Provider
    attempts: int


@dataclass(slots=True)
class Answer(Generic[T]):
    value: T
    usage: Usage
    # False when a stream that had already started broke afterwards.
    ok: bool = True


Attempt = Callable[[Adapter, Target, Provider, Chosen], Awaitable[Answer[T]]]


def backoff(route: Route, tries: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, at least what the provider asked for."""
    delay = min(route.retry.backoff_max, route.retry.backoff_base * 2**tries)
    delay *= random.uniform(0.5, 1.0)
    return float(max(delay, retry_after or 0.0))


def cost(target: Target, usage: Usage) -> Decimal | None:
    if target.pricing is None:
        return None
    p = target.pricing
    return (
        usage.input_tokens * p.input_per_million + usage.output_tokens * p.output_per_million
    ) / MILLION


async def forward(
    route: Route,
    call: Call,
    rule: ResidencyRule,
    providers: dict[str, Provider],
    adapters: dict[str, Adapter | UnsupportedApi],
    health: HealthBoard,
    record: AuditRecord,
    attempt: Attempt[T],
    protection: RequestProtection | None = None,
    *,
    task: asyncio.Task[Any] | None = None,
) -> tuple[Answer[T], Chosen]:
    """Try the route's targets in order until one answers; ``attempt`` makes one attempt
    (it sends ``protection.outgoing(target, provider).call`` when there is protection).
    ``task`` is the one running this (looked up when not given)."""
    task = task or asyncio.current_task()
    assert task is not None
    loop = task.get_loop()
    deadline = loop.time() + route.timeouts.total
    ordered = routing.order(route, health)
    if not any(
        rule.complies(t.where(providers[t.provider]), providers[t.provider].jurisdiction)
        for t in ordered
    ):
        for t in ordered:
            _skip(record, t, providers[t.provider], "skipped_residency", rule)
        raise NoCompliantTarget(_no_compliant_message(ordered, providers, rule))
    contacted = 0
    cb = route.circuit_breaker
    redactor: Redactor | None = None  # made on the first failure, if any
    for target in ordered:
        provider = providers[target.provider]
        # Decided here, right before any attempt at this target, never assumed.
        if not rule.complies(target.where(provider), provider.jurisdiction):
            _skip(record, target, provider, "skipped_residency", rule)
            continue
        adapter = adapters[target.provider]
        if isinstance(adapter, UnsupportedApi) or call.operation not in adapter.operations:
            _skip(
                record,
                target,
                provider,
                adapter.outcome if isinstance(adapter, UnsupportedApi) else "skipped_unsupported",
                rule,
                detail=str(adapter)
                if isinstance(adapter, UnsupportedApi)
                else f"{adapter.api} cannot serve {call.operation}",
            )
            continue
        found: FindingsSummary | None = None
        if protection is not None:
            try:
                found = protection.outgoing(target, provider).summary
            except PersonalDataBlocked as blocked:
                _skip(
                    record,
                    target,
                    provider,
                    "skipped_personal_data",
                    rule,
                    detail=str(blocked),
                    data_protection=blocked.summary,
                )
                continue
        state = health.of(target.provider, target.model)
        for tries in range(route.retry.attempts):
            if not state.allow(loop.time(), cb):
                _skip(record, target, provider, "skipped_circuit_open", rule)
                break
            contacted += 1
            started = loop.time()
            entry = AttemptRecord(
                target.provider,
                target.model,
                target.where(provider),
                provider.jurisdiction,
                "ok",
                start_ns=time.time_ns(),
                # An Audit-mode policy would have kept this target out: recorded, counted.
                policy_findings=target.policy_audit,
                data_protection=found,
            )
            record.attempts.append(entry)
            chosen = Chosen(target, provider, contacted)
            try:
                with Deadline(task, deadline):
                    answer = await attempt(adapter, target, provider, chosen)
            except TimeoutError:
                entry.outcome, entry.detail = "timeout", "total deadline"
                entry.latency_ms = (loop.time() - started) * 1000
                state.failed(loop.time(), cb)
                raise AllAttemptsFailed("the route's total deadline passed") from None
            except AttemptError as err:
                entry.latency_ms = (loop.time() - started) * 1000
                if redactor is None:
                    redactor = redactor_for(providers, adapters)
                entry.outcome, entry.status = err.outcome, err.status
                entry.detail = redactor.text(str(err))
                entry.retry_after = err.retry_after
                if not err.failover and isinstance(err, UpstreamStatus):
                    entry.outcome = "rejected"
                    # Scrubbed before translation too: it may cut the body mid-key.
                    raw = redactor.bytes(err.body)
                    err.body = redactor.bytes(adapter.error_body(call, err.status or 400, raw))
                    # Adapters answer the client's error shape, JSON whatever the provider sent.
                    err.content_type = "application/json"
                    state.release()
                    raise RelayedClientError(err) from err
                state.failed(loop.time(), cb)
                if err.retryable and tries + 1 < route.retry.attempts:
                    delay = backoff(route, tries, err.retry_after)
                    if loop.time() + delay < deadline:
                        await asyncio.sleep(delay)
                        continue
                break
            except BaseException as exc:
                # Cancelled, or an unexpected error: a half-open probe must not stay taken,
                # and the attempt's record must not keep the "ok" it was created with.
                state.release()
                entry.latency_ms = (loop.time() - started) * 1000
                entry.outcome = (
                    "cancelled" if isinstance(exc, asyncio.CancelledError) else "internal_error"
                )
                raise
            entry.latency_ms = (loop.time() - started) * 1000
            if answer.ok:
                state.succeeded(loop.time() - started)
            else:
                entry.outcome = "stream_error"
                state.failed(loop.time(), cb)
            return answer, chosen
    raise AllAttemptsFailed(summary(record))


def _skip(
    record: AuditRecord,
    target: Target,
    provider: Provider,
    outcome: str,
    rule: ResidencyRule,
    detail: str = "",
    data_protection: FindingsSummary | None = None,
) -> None:
    if outcome == "skipped_residency":
        detail = rule.violation(target.where(provider), provider.jurisdiction) or ""
    record.attempts.append(
        AttemptRecord(
            target.provider,
            target.model,
            target.where(provider),
            provider.jurisdiction,
            outcome,
            detail=detail,
            data_protection=data_protection,
        )
    )


def _no_compliant_message(
    ordered: list[Target], providers: dict[str, Provider], rule: ResidencyRule
) -> str:
    reasons = []
    for t in ordered:
        p = providers[t.provider]
        reasons.append(f"{t.provider} {rule.violation(t.where(p), p.jurisdiction)}")
    return "no target complies with the residency in force: " + "; ".join(reasons)


def summary(record: AuditRecord) -> str:
    parts = []
    for a in record.attempts:
        status = f" {a.status}" if a.status else ""
        parts.append(f"{a.provider}/{a.model}: {a.outcome}{status}")
    return "all targets failed: " + "; ".join(parts)
