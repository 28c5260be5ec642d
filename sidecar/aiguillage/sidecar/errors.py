"""Errors of the data plane.

    SidecarError
    ├── ConfigError              the config or credentials directory cannot be used
    ├── InvalidRequest           the client's request is malformed (a 400 naming the field)
    └── AttemptError             one attempt at one target failed; decides failover
        ├── ConnectFailed        no connection (refused, reset before any answer, DNS)
        ├── TimedOut             connect, first-token, stream-idle or total deadline
        ├── UpstreamStatus       the provider answered with an HTTP error status (4xx, 5xx)
        └── UpstreamProtocol     the answer broke off: a body or stream cut short, an
            │                    in-stream error event
            └── MalformedAnswer  a complete answer that is garbage: invalid JSON, wrong
                │                JSON types, impossible usage, anything an adapter cannot read
                ├── Redirected         a 3xx, never followed (outcome ``redirect_refused``)
                ├── UnexpectedStatus   a 1xx or a status past 599 (``unexpected_status``)
                ├── UnexpectedContent  a 2xx that is empty or not of the expected content
                │                      type (``unexpected_content``)
                └── ResponseTooLarge   a body, SSE line or event past the route's limits
                                       (``response_too_large``)

Failover is decided by these types and HTTP status codes, never by error text.
Exceptions of the HTTP client (:mod:`.httpclient`) and of asyncio, and whatever an adapter
raises while reading a provider's data, are mapped to them in one place,
:mod:`aiguillage.sidecar.upstream`.

Retry on the same target or only fail over: connection failures, timeouts, 5xx/408/409/429,
cut streams and in-stream error events are transient, so the same target may be tried again
(``retry.attempts``). A :class:`MalformedAnswer` and its subclasses say the provider (or
something between it and the sidecar: a captive proxy, a misconfigured endpoint) does not
speak its API: asking again gets the same, so the next target is tried at once. Every
attempt error fails over, except a provider's own 4xx refusal of the request (see
:class:`UpstreamStatus`).
"""

from __future__ import annotations

RETRYABLE_STATUS = frozenset({408, 409, 429})


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose."""


class ConfigError(SidecarError):
    """A config directory that cannot be loaded; the message says which file and why."""


class InvalidRequest(SidecarError):
    """A client mistake found before routing: ``field`` names where, the message what is
    wrong and what would be right. Answered with a 400 in the client's API shape."""

    def __init__(self, field: str, message: str, code: str = "invalid_request") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.code = code


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


class MalformedAnswer(UpstreamProtocol):
    """A whole answer, event or frame that is not what the provider's API defines."""

    retryable = False


class Redirected(MalformedAnswer):
    """The provider answered a 3xx. Never followed: the request (prompt and key) would go to
    an origin that residency was not checked for."""

    outcome = "redirect_refused"

    def __init__(self, status: int, location: str | None) -> None:
        where = f" to {location}" if location else ""
        super().__init__(f"provider answered HTTP {status} redirecting{where} (not followed)")
        self.status = status


class UnexpectedStatus(MalformedAnswer):
    """A final status no HTTP API answers with (1xx such as 101, or outside 100-599)."""

    outcome = "unexpected_status"

    def __init__(self, status: int) -> None:
        super().__init__(f"provider answered with HTTP status {status}, which no API answers")
        self.status = status


class UnexpectedContent(MalformedAnswer):
    """A 2xx whose body is empty or of a content type the adapter cannot read."""

    outcome = "unexpected_content"


class ResponseTooLarge(MalformedAnswer):
    """A body, line or event larger than the route allows (``size_limits`` in the config)."""

    outcome = "response_too_large"


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
