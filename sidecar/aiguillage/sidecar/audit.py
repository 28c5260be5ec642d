"""One JSON line per request that proves where it went, and the file it is written to.

Records carry no prompt, completion or key: only routing facts, the caller's identity
(namespace, service account, pod), token counts and cost. :class:`AuditLog` writes them to
a file (``AIGUILLAGE_AUDIT_LOG``) or stdout without blocking the event loop for long:
records are queued as they are, and serialised, linked into this sidecar's hash chain and
written in one ``write(2)`` per batch: at most :data:`BATCH_SECONDS` after the first record
of the batch, or at once when :data:`BATCH_RECORDS` are waiting (and at close, reopen and
drain). Serialising a batch in one go keeps the code and data it needs in the CPU's caches:
measured in situ, a record costs about half of what serialising it inside its own
request did (docs/bench/optimisations.md). Signed checkpoints join the chain after the
records before them (see :mod:`aiguillage.sidecar.auditchain`); wherever a line ends up
(the file, or stdout while the file cannot be written), it keeps its place in the chain.
``AIGUILLAGE_AUDIT_LOG=off`` (:data:`OFF`) writes none: for measuring what the
audit costs (``make bench``'s feature costs), never for serving.

Operations, as decided for the audit file (the README's "Operations" section says the same):

- **Rotation.** The file is opened with ``O_APPEND``, so after a ``copytruncate`` rotation
  the next lines go to the start of the emptied file (no hole). A rename rotation (with or
  without ``create``) is noticed by a ``stat`` of the path at most every
  ``check_every`` seconds (when records are written): when the path is gone or names
  another file, the file is reopened (created if missing). Lines written in between land
  in the renamed file, never nowhere. ``SIGHUP`` reopens it at once (:meth:`AuditLog.reopen`).
- **Write errors** (a full disk, a read-only or vanished volume...). A request's answer never
  depends on the audit: records are written after it, outside the handler. A record that
  cannot be written to the file is written to stdout instead (whole lines only: a line cut
  by a full disk is truncated off the file again), counted in
  ``aiguillage_audit_write_errors_total{reason=<errno>}``, and the failure is logged once.
  Records keep going to stdout until the file is retried, every ``retry_every`` seconds; then
  it is reopened and used again. Only if stdout fails too is a record lost, and it is counted
  in ``aiguillage_audit_records_lost_total``. An audit to stdout falls back to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

import orjson

from aiguillage.sidecar import log
from aiguillage.sidecar.auditchain import AuditChain
from aiguillage.sidecar.config import PolicyFinding
from aiguillage.sidecar.privacy.findings import FindingsSummary


@dataclass(slots=True)
class AttemptRecord:
    provider: str
    model: str
    location: str | None
    jurisdiction: str | None
    # ok | http_error | timeout | connect_error | protocol_error | rejected | stream_error |
    # cancelled (the client went away or the drain ended) | internal_error | skipped_*
    outcome: str
    latency_ms: float = 0.0
    status: int | None = None
    detail: str = ""
    start_ns: int = 0  # wall clock when the attempt began (for traces)
    # Seconds the provider asked to wait before retrying (Retry-After), if it said.
    retry_after: float | None = None
    # Audit-mode policies that would have kept this target out (Target.policy_audit).
    policy_findings: tuple[PolicyFinding, ...] = ()
    # What data protection did to the request for this target (counts, never values);
    # None when the route has no data-protection rules.
    data_protection: FindingsSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "location": self.location,
            "jurisdiction": self.jurisdiction,
            "outcome": self.outcome,
            # To the microsecond, halves up: a quarter of round(x, 3)'s cost, which formats
            # the float as text (0.5 us a call, half of this method's time before).
            "latencyMs": int(self.latency_ms * 1000 + 0.5) / 1000,
        }
        if self.status is not None:
            out["status"] = self.status
        if self.detail:
            out["detail"] = self.detail
        if self.policy_findings:
            out["policyFindings"] = [
                {"policy": f.policy, "reason": f.reason} for f in self.policy_findings
            ]
        if self.data_protection is not None:
            out["dataProtection"] = self.data_protection.as_audit_dict()
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
    # Findings per category in the request, whatever the target (see protection.py); None
    # when the route has no data-protection rules (nothing was looked for).
    data_found: dict[str, int] | None = None

    def applied_data_protection(self) -> FindingsSummary | None:
        """What data protection did for the attempt whose result the client got: the last
        attempt it was applied to (sent, or refused by a ``block`` rule)."""
        for attempt in reversed(self.attempts):
            if attempt.data_protection is not None:
                return attempt.data_protection
        return None

    def to_json(self) -> bytes:
        out: dict[str, Any] = {
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
        if self.data_found is not None:
            applied = self.applied_data_protection()
            out["dataProtection"] = {
                "found": self.data_found,
                "applied": applied.as_audit_dict() if applied is not None else {},
            }
        return orjson.dumps(out)


# The audit destination that writes nothing at all.
OFF = "off"

# Longest a record waits to be written: a batch is written this long after its first record.
# Two milliseconds is below anything a reader of the trail can notice, and at a few thousand
# requests a second it gathers tens of records into one serialisation pass and one write(2).
BATCH_SECONDS = 0.002
# A batch this large is written at once, whatever its age (bounds memory under a burst).
BATCH_RECORDS = 256

# Called with (metric name, errno name, number of records) when records miss the file.
ErrorCounter = Callable[[str, str, int], None]


def _reason(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


class AuditLog:
    """The audit trail of one sidecar: a file reopened on rotation, or stdout.

    ``path`` ``None`` or ``"-"`` means stdout, :data:`OFF` nowhere. ``fallback`` is where
    records go while the file cannot be written (default: stdout; stderr when the audit
    itself is stdout).

    With a ``chain``, every line is linked into it, a checkpoint is added when
    ``chain.every_records`` records are unsealed (after the batch that linked the last of
    them), every ``chain.every_seconds`` seconds while records are unsealed, and at
    :meth:`close`. Checkpoints are also written to ``checkpoint_copy`` when given, so that
    a trail cut short after its last checkpoint can be told from a complete one.
    """

    def __init__(
        self,
        path: str | None,
        *,
        fallback: IO[bytes] | None = None,
        check_every: float = 1.0,
        retry_every: float = 1.0,
        chain: AuditChain | None = None,
        checkpoint_copy: IO[bytes] | None = None,
    ) -> None:
        self.enabled = path != OFF
        self.path = path if path not in (None, "-", OFF) else None
        self._fallback = fallback
        self.check_every = check_every
        self.retry_every = retry_every
        self.count_error: ErrorCounter | None = None
        self._queued: list[AuditRecord] = []  # records not yet serialised and linked
        self._pending: list[bytes] = []  # their lines (and checkpoints), not yet written
        self._batch: asyncio.TimerHandle | None = None  # writes the batch when it is due
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_check = 0.0
        self._failure: str | None = None  # errno name while the file cannot be written
        self._retry_at = 0.0
        self._diverted = 0
        self.chain = chain
        self._copy = checkpoint_copy
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if self.path is not None:
            try:
                self._open()
            except OSError as exc:
                self._failed(exc, 0.0)

    # -- writing ---------------------------------------------------------------------------

    def write(self, record: AuditRecord) -> None:
        """Queue ``record``; it is written with its batch (see :data:`BATCH_SECONDS`).
        The record must not change after this call."""
        if not self.enabled:
            return
        queued = self._queued
        queued.append(record)
        if len(queued) >= BATCH_RECORDS:
            self._write_batch()
            return
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.call_later(BATCH_SECONDS, self._write_batch)
            if self.chain is not None and self._timer is None:
                self._arm_timer()

    @property
    def waiting(self) -> int:
        """Records (and checkpoints) queued and not yet written."""
        return len(self._queued) + len(self._pending)

    def _write_batch(self) -> None:
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        self.flush()

    def _link_queued(self, seal_when_due: bool = True) -> None:
        """Serialise the queued records and link them into the chain, in order; then a
        checkpoint if one is due (unless the caller seals the chain itself)."""
        records, self._queued = self._queued, []
        chain = self.chain
        pending = self._pending
        for record in records:
            try:
                line = record.to_json()
            except Exception as exc:  # one broken record must not take its batch with it
                log.server.error(
                    "audit record of request %s could not be serialised (%s): lost",
                    record.request_id,
                    type(exc).__name__,
                )
                self._count("aiguillage_audit_records_lost_total", type(exc).__name__, 1)
                continue
            if chain is not None:
                line = chain.link(line)
            pending.append(line + b"\n")
        if seal_when_due and chain is not None and chain.due:
            self._checkpoint()

    # -- the chain's checkpoints -------------------------------------------------------------

    def _arm_timer(self) -> None:
        assert self.chain is not None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.chain.settings.every_seconds, self._tick)

    def _tick(self) -> None:
        self._link_queued()
        if self.chain is not None and self.chain.unsealed:
            self._checkpoint()
            self.flush()
        self._arm_timer()

    def _checkpoint(self, final: bool = False) -> None:
        """Queue a checkpoint (written with the records before it) and copy it."""
        assert self.chain is not None
        try:
            line = self.chain.checkpoint(final) + b"\n"
        except Exception:  # a checkpoint must never stop the audit (or serving)
            log.server.exception("could not make an audit checkpoint")
            return
        self._pending.append(line)
        if self._copy is not None:
            try:
                self._copy.write(line)
                self._copy.flush()
            except (OSError, ValueError):
                log.server.warning("could not write the audit checkpoint copy")

    def flush(self) -> None:
        """Write every queued record now (to the file, or where it falls back to)."""
        if self._queued:
            self._link_queued()
        lines, self._pending = self._pending, []
        if not lines:
            return
        data = b"".join(lines)
        if self.path is None:
            self._to_stdout(data, len(lines))
            return
        now = time.monotonic()
        if self._failure is not None:
            if now < self._retry_at:
                self._divert(data, len(lines), self._failure)
                return
            self._retry(now)
        elif now >= self._next_check:
            self._next_check = now + self.check_every
            self._follow_rotation(now)
        if self._fd is None:  # reopening failed
            self._divert(data, len(lines), self._failure or "EBADF")
            return
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            kept = self._keep_whole_lines(data, written)
            self._failed(exc, now)
            rest = data[kept:]
            self._divert(rest, rest.count(b"\n"), self._failure or "EIO")

    def _keep_whole_lines(self, data: bytes, written: int) -> int:
        """Cut a torn last line off the file; return how many bytes of ``data`` it kept."""
        kept = data.rfind(b"\n", 0, written) + 1
        if kept < written and self._fd is not None:
            try:
                size = os.fstat(self._fd).st_size
                os.ftruncate(self._fd, max(0, size - (written - kept)))
            except OSError:
                pass  # the torn fragment stays; every whole record still reaches stdout
        return kept

    def _to_stdout(self, data: bytes, count: int) -> None:
        try:
            out = sys.stdout.buffer
            out.write(data)
            out.flush()
        except (OSError, ValueError) as exc:
            reason = _reason(exc) if isinstance(exc, OSError) else "closed"
            self._count("aiguillage_audit_write_errors_total", reason, count)
            self._last_resort(data, count, sys.stderr.buffer)

    def _divert(self, data: bytes, count: int, reason: str) -> None:
        if not count:
            return
        self._diverted += count
        self._count("aiguillage_audit_write_errors_total", reason, count)
        self._last_resort(data, count, self._fallback or sys.stdout.buffer)

    def _last_resort(self, data: bytes, count: int, out: IO[bytes]) -> None:
        try:
            out.write(data)
            out.flush()
        except (OSError, ValueError) as exc:
            self._count("aiguillage_audit_records_lost_total", type(exc).__name__, count)
            log.server.error(
                "%d audit record(s) lost: neither the file nor stdout took them", count
            )

    def _count(self, metric: str, reason: str, count: int) -> None:
        if self.count_error is not None:
            self.count_error(metric, reason, count)

    # -- the file --------------------------------------------------------------------------

    def _open(self) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        stat = os.fstat(fd)
        self._close_fd()
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _follow_rotation(self, now: float) -> None:
        """Reopen the file when its path was renamed away, removed or replaced."""
        assert self.path is not None
        try:
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._identity:
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed(exc, now)
            return
        log.server.info("audit file %s was rotated: reopening it", self.path)
        try:
            self._open()
        except OSError as exc:
            self._failed(exc, now)

    def _failed(self, exc: OSError, now: float) -> None:
        if self._failure is None:
            log.server.warning(
                "audit file %s cannot be written (%s): records go to stdout until it can; "
                "retrying every %gs",
                self.path,
                _reason(exc),
                self.retry_every,
            )
        self._failure = _reason(exc)
        self._retry_at = now + self.retry_every

    def _retry(self, now: float) -> None:
        try:
            self._open()
        except OSError as exc:
            self._failed(exc, now)
            return
        self._failure = None
        self._next_check = now + self.check_every
        log.server.info(
            "audit file %s is writable again (%d record(s) went to stdout meanwhile)",
            self.path,
            self._diverted,
        )
        self._diverted = 0

    def reopen(self) -> None:
        """Write what is queued, then reopen the file (SIGHUP, after a rotation)."""
        self.flush()
        if self.path is None:
            return
        try:
            self._open()
        except OSError as exc:
            self._failed(exc, time.monotonic())
        else:
            self._failure = None
            log.server.info("audit file %s reopened", self.path)

    def close(self) -> None:
        """Seal the chain (a final checkpoint), write what is queued and close; a second call
        does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        self._link_queued(seal_when_due=False)  # the final checkpoint seals them
        if self.chain is not None and self.chain.seq:
            self._checkpoint(final=True)
        self.flush()
        self._close_fd()
