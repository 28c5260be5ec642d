"""The request log: every API request a simulator received, as tests assert on it.

:class:`~.base.Simulator` records one :class:`RecordedRequest` per API request before applying
its fault or calling the provider's handler, in a log bounded to ``max_log`` entries (oldest
dropped first). Tests read it from Python (``Simulator.requests``, ``Simulator.last_request``)
or, from another process, over ``GET /_sim/requests`` (:mod:`.admin`), which returns
:meth:`RecordedRequest.to_dict` of each. Calls to the admin API itself are not recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .faults import Fault

__all__ = ["RecordedRequest", "record"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API request as the simulator received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    time: float
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "time": self.time,
            "fault": self.fault,
        }


def record(request: web.Request, body: Any, fault: Fault | None) -> RecordedRequest:
    """``request`` as received now, with its parsed JSON ``body`` and the ``fault`` it got.

    A repeated header keeps its last value.
    """
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        time=time.time(),
        fault=fault.kind if fault is not None else None,
    )
