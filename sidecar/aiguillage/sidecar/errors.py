"""Errors of the data plane.

    SidecarError
    ├── ConfigError            the config or credentials directory cannot be used
    └── AttemptError           one attempt at one target failed; decides failover
        ├── ConnectFailed      no connection (refused, reset before any answer, DNS)
        ├── TimedOut           connect, first-token, stream-idle or total deadline
        ├── UpstreamStatus     the provider answered with an HTTP error status
        └── UpstreamProtocol   the answer broke the wire format (bad JSON, cut stream,
                               in-stream error event)

Failover is decided by these types and HTTP status codes, never by error text.
Third-party exceptions (aiohttp, asyncio) are mapped to them in one place,
:func:`aiguillage.sidecar.upstream.send`.
"""

from __future__ import annotations

RETRYABLE_STATUS = frozenset({408, 409, 429})


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose."""


class ConfigError(SidecarError):
    """A config directory that cannot be loaded; the message says which file and why."""


class AttemptError(SidecarError):
    """One attempt failed. ``retryable``: same target may be tried again;
    ``failover``: the next target may be tried."""

    outcome = "error"
    retryable = True
    failover = True
    retry_after: float | None = None
    status: int | None = None


class ConnectFailed(AttemptError):
    outcome = "connect_error"


class TimedOut(AttemptError):
    outcome = "timeout"


class UpstreamProtocol(AttemptError):
    outcome = "protocol_error"


class UpstreamStatus(AttemptError):
    """The provider answered ``status``; ``body`` is its error body, kept to relay 4xx."""

    outcome = "http_error"

    def __init__(
        self, status: int, body: bytes, content_type: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"provider answered HTTP {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.retry_after = retry_after
        server_side = status >= 500 or status in RETRYABLE_STATUS
        self.retryable = server_side
        # A bad key at one provider says nothing about the request: try the next one.
        self.failover = server_side or status in (401, 403)
