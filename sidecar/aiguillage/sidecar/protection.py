"""Data protection in the request path: a request scanned once, and what each target gets.

The engine (:mod:`aiguillage.sidecar.privacy`) finds personal data and turns a request into
what one target may receive; this module is where the request path uses it, for a route
with data-protection rules (``Route.protection``, compiled when the config is loaded):

- :func:`scan_request` scans the client's body once, when the request has been routed — in
  a worker thread when the body is larger than :data:`THREAD_SCAN_BYTES`, so that a large
  prompt full of digits (0.1–0.2 s for 128 KB) does not stop the event loop serving the
  other requests meanwhile;
- :meth:`RequestProtection.outgoing` is called by :func:`~aiguillage.sidecar.forward.forward`
  before a target is tried, right after its residency check: the rules for that target's
  location and jurisdiction are applied to the client's original body, which is never
  modified (failover can change the target, and with it the action: each target gets its
  own copy). It returns the call that target receives and the restorer of its answer, or
  raises :class:`~aiguillage.sidecar.privacy.errors.PersonalDataBlocked`: the target is
  skipped (``skipped_personal_data``), and when no target may receive the request the
  client gets a 400 ``blocked_personal_data`` (see :mod:`.outcomes`). Targets at the same
  place share one result (kept per location and jurisdiction);
- the Exchange (:mod:`.server`) sends :attr:`Outgoing.call` and puts the originals back with
  :attr:`Outgoing.restorer` into the answer the client receives — after the adapter and the
  frontend translated it, so whole answers and streams of every client API are restored
  the same way, whichever provider answered (streams through :func:`send_restored` and
  :func:`release_held`).

What leaves this module for the audit record and ``/metrics`` are counts (categories and
actions), never a value: :meth:`RequestProtection.found` and :attr:`Outgoing.summary`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiguillage.sidecar.adapters.base import Call
from aiguillage.sidecar.config import Provider, Target
from aiguillage.sidecar.httpserver import StreamResponse
from aiguillage.sidecar.privacy.errors import PersonalDataBlocked
from aiguillage.sidecar.privacy.findings import FindingsSummary

if TYPE_CHECKING:  # the engine is imported only by configs with rules (see privacy/__init__)
    from aiguillage.sidecar.privacy.engine import DataProtectionEngine, RequestScan
    from aiguillage.sidecar.privacy.restore import Restorer, StreamRestorer

# Request bodies larger than this are scanned in a worker thread (see docs/data-protection.md,
# "In the request path", for the measurement behind it): below it a scan takes at most a few
# milliseconds, less than handing it to a thread and back costs in latency.
THREAD_SCAN_BYTES = 16 * 1024

Place = tuple[str | None, str | None]  # (location, jurisdiction) of a target


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What one target receives of a request, and how its answer is put back."""

    # The client's call itself when the rules changed nothing for this target.
    call: Call
    # Puts pseudonymised originals back into the client-facing answer; None: nothing to do.
    restorer: Restorer | None
    # Counts per category and action for this target (audit record, metrics).
    summary: FindingsSummary


class RequestProtection:
    """The data protection of one request: its scan, and each target's share of it."""

    def __init__(self, scan: RequestScan, call: Call) -> None:
        self.scan = scan
        self.call = call
        self._by_place: dict[Place, Outgoing | PersonalDataBlocked] = {}

    def found(self) -> dict[str, int]:
        """How many findings of each category the request holds, whatever the target."""
        counts = Counter(each.finding.category for each in self.scan.located)
        return dict(sorted(counts.items()))

    def outgoing(self, target: Target, provider: Provider) -> Outgoing:
        """The call ``target`` receives; raises PersonalDataBlocked when a ``block`` rule
        keeps the request from it."""
        place = (target.where(provider), provider.jurisdiction)
        decided = self._by_place.get(place)
        if decided is None:
            decided = self._by_place[place] = self._decide(*place)
        if isinstance(decided, PersonalDataBlocked):
            raise decided.with_traceback(None)
        return decided

    def _decide(
        self, location: str | None, jurisdiction: str | None
    ) -> Outgoing | PersonalDataBlocked:
        try:
            protected = self.scan.apply(location=location, jurisdiction=jurisdiction)
        except PersonalDataBlocked as blocked:
            return blocked
        call = self.call
        if protected.body is not call.body:
            call = dataclasses.replace(call, body=protected.body)
        return Outgoing(call, protected.restorer, protected.summary)


async def scan_request(engine: DataProtectionEngine, call: Call, size: int) -> RequestProtection:
    """Scan ``call``'s body (``size`` bytes as received) once for the whole request."""
    if size > THREAD_SCAN_BYTES:
        loop = asyncio.get_running_loop()
        scan = await loop.run_in_executor(None, engine.scan, call.operation, call.body)
    else:
        scan = engine.scan(call.operation, call.body)
    return RequestProtection(scan, call)


async def send_restored(
    client: StreamResponse, chunk: bytes, restoring: StreamRestorer | None
) -> None:
    """Write one client-facing chunk of a stream, with the request's originals put back."""
    if restoring is not None:
        chunk = restoring.feed(chunk)
        if not chunk:
            return
    await client.write(chunk)


async def release_held(client: StreamResponse, restoring: StreamRestorer | None) -> None:
    """Write what a restorer still holds when its stream ends (see privacy/restore.py)."""
    if restoring is not None:
        rest = restoring.close()
        if rest:
            await client.write(rest)
