"""One JSON line per request that proves where it went.

Records carry no prompt, completion or key: only routing facts, token counts and
cost. They are written to a file or stdout without blocking the event loop for
long (small writes to a buffered file object, flushed once per loop iteration).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import orjson

from aiguillage.sidecar.config import PolicyFinding


@dataclass(slots=True)
class AttemptRecord:
    provider: str
    model: str
    location: str | None
    jurisdiction: str | None
    outcome: str  # ok | http_error | timeout | connect_error | protocol_error | skipped_*
    latency_ms: float = 0.0
    status: int | None = None
    detail: str = ""
    start_ns: int = 0  # wall clock when the attempt began (for traces)
    # Seconds the provider asked to wait before retrying (Retry-After), if it said.
    retry_after: float | None = None
    # Audit-mode policies that would have kept this target out (Target.policy_audit).
    policy_findings: tuple[PolicyFinding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "location": self.location,
            "jurisdiction": self.jurisdiction,
            "outcome": self.outcome,
            "latencyMs": round(self.latency_ms, 3),
        }
        if self.status is not None:
            out["status"] = self.status
        if self.detail:
            out["detail"] = self.detail
        if self.policy_findings:
            out["policyFindings"] = [
                {"policy": f.policy, "reason": f.reason} for f in self.policy_findings
            ]
        return out


@dataclass(slots=True)
class AuditRecord:
    time: float
    request_id: str
    namespace: str
    pod: str
    route: str | None
    model: str
    operation: str
    stream: bool
    residency: dict[str, list[str] | None]
    attempts: list[AttemptRecord] = field(default_factory=list)
    outcome: str = "ok"
    status: int = 200
    input_tokens: int = 0
    output_tokens: int = 0
    cost_eur: Decimal | None = None
    config_hash: str = ""
    service_account: str = ""  # the calling workload (the pod's service account)
    # What rate limits and budgets did to this request (see limits/quota.py); empty: nothing.
    limits: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "time": self.time,
                "requestId": self.request_id,
                "namespace": self.namespace,
                "serviceAccount": self.service_account,
                "pod": self.pod,
                "route": self.route,
                "model": self.model,
                "operation": self.operation,
                "stream": self.stream,
                "outcome": self.outcome,
                "status": self.status,
                "residency": self.residency,
                "attempts": [a.as_dict() for a in self.attempts],
                "usage": {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens},
                "costEur": None if self.cost_eur is None else str(self.cost_eur),
                "configHash": self.config_hash,
                "limits": self.limits,
            }
        )


class AuditLog:
    def __init__(self, path: str | None) -> None:
        self._own = path not in (None, "-")
        self._out: IO[bytes] = open(path, "ab") if path and self._own else sys.stdout.buffer  # noqa: SIM115
        self._flush_scheduled = False

    def write(self, record: AuditRecord) -> None:
        self._out.write(record.to_json() + b"\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
        if self._own:
            self._out.close()
