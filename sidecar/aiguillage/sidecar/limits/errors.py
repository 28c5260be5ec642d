"""Why a request is refused by its limits, and why a counter store may fail.

    SidecarError
    └── LimitError            the sidecar answers the client itself (status, code, Retry-After)
        ├── LimitRefused      a rate limit or budget in Enforce mode does not let it through:
        │                     429 ``limit_refused``, naming the limit, its policy and scope
        └── LimitsUnavailable the shared store cannot be reached and a limit of the route
                              fails closed: 503 ``limits_unavailable``

    StoreUnavailable          a store call failed (connection, timeout, protocol): caught by
                              :mod:`aiguillage.sidecar.limits.shared`, never seen by a client

The server turns a :class:`LimitError` into an error in the client's API shape (the
frontend's ``error()``) with a ``Retry-After`` header, and audits its ``code`` as the
request's outcome.
"""

from __future__ import annotations

import math

from aiguillage.sidecar.errors import SidecarError


class LimitError(SidecarError):
    """The request is answered by the sidecar because of its limits."""

    status = 429
    code = "limit_refused"
    type = "rate_limit_error"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        # Whole seconds (Retry-After takes an integer), at least one.
        self.retry_after = max(1, math.ceil(retry_after))


class LimitRefused(LimitError):
    """A limit in Enforce mode would be exceeded by this request."""

    def __init__(self, message: str, retry_after: float, limit: str, policy: str) -> None:
        super().__init__(message, retry_after)
        self.limit = limit  # requests_per_minute | tokens_per_minute | budget
        self.policy = policy


class LimitsUnavailable(LimitError):
    """The counters cannot be read and a limit says to refuse rather than guess."""

    status = 503
    code = "limits_unavailable"
    type = "api_error"


class StoreUnavailable(Exception):
    """A counter store could not answer (its cause is chained; its text is not shown)."""
