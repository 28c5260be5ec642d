"""Who may call the sidecar's API: loopback hosts, no browser cross-origin requests, JSON only.

The sidecar listens on loopback, but a web page a developer opens can still reach it: through
DNS rebinding (``evil.example`` resolving to 127.0.0.1, so the browser sends
``Host: evil.example``) or with a cross-origin "simple" request (a ``text/plain`` POST, sent
without a CORS preflight). :func:`refusal` says why a request to ``/v1/...`` is refused:

- its ``Host`` is not loopback (``127.0.0.0/8``, ``localhost``, ``[::1]``, any port) nor one
  of the configured allowed hosts (``--allowed-hosts``; for pods called by their IP or a
  Service name) → 403;
- it comes from a browser page of another origin: an ``Origin`` header that is not loopback
  or allowed (``null`` included), or ``Sec-Fetch-Site: cross-site`` → 403;
- a ``POST`` whose ``Content-Type`` is not ``application/json`` → 415 (the openai and
  anthropic SDKs always send it; a browser cannot send it cross-origin without a preflight,
  which the sidecar never answers).

Requests without ``Host`` or ``Origin`` (non-browser clients, HTTP/1.0) are not refused for
lacking them. ``/healthz``, ``/readyz`` and ``/metrics`` are not guarded: probes and scrapers
reach them by the pod's IP and they carry no prompt and spend nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiguillage.sidecar.httpserver import Request

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    code: str
    type: str = "permission_error"  # the error type of the OpenAI shape


class Guard:
    """The checks of one sidecar; ``allowed_hosts`` are extra host names (no port)."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.allowed_hosts = frozenset(h.lower().strip("[]") for h in allowed_hosts)
        # Host header values seen and allowed: the same one or two values come every time.
        self._allowed_values: set[str] = set()

    def refusal(self, request: Request) -> Refusal | None:
        headers = request.headers
        host = headers.get("Host")
        if host is not None and host not in self._allowed_values:
            if not self.allowed(_hostname(host)):
                return Refusal(
                    403,
                    f'Host "{_shown(host)}" is not loopback nor an allowed host '
                    "(the sidecar answers 127.0.0.1, localhost and [::1]; "
                    "others need --allowed-hosts)",
                    "forbidden_host",
                )
            if len(self._allowed_values) < 64:
                self._allowed_values.add(host)
        origin = headers.get("Origin")
        if origin is not None and not self.allowed(_origin_host(origin)):
            return Refusal(
                403,
                f'cross-origin requests from "{_shown(origin)}" are refused '
                "(only loopback pages and --allowed-hosts may call the sidecar)",
                "forbidden_origin",
            )
        if headers.get("Sec-Fetch-Site") == "cross-site":
            return Refusal(
                403, "cross-site browser requests are refused (Sec-Fetch-Site)", "forbidden_origin"
            )
        if request.method == "POST" and request.content_type != "application/json":
            return Refusal(
                415,
                f'Content-Type must be application/json, not "{_shown(request.content_type)}"',
                "unsupported_media_type",
                "invalid_request_error",
            )
        return None

    def allowed(self, hostname: str | None) -> bool:
        if not hostname:
            return False
        if hostname in LOOPBACK_NAMES or hostname in self.allowed_hosts:
            return True
        try:
            return ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            return False


def _hostname(host: str) -> str:
    """The lower-cased name or address of a Host header value, without port or brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def _origin_host(origin: str) -> str | None:
    if origin == "null":
        return None
    try:
        return urlsplit(origin).hostname
    except ValueError:
        return None


def _shown(value: str) -> str:
    """A header value safe to quote in an error message: printable ASCII, short."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in value[:100])
    return cleaned + ("..." if len(value) > 100 else "")
