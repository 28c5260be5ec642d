"""Error bodies the client's SDK understands (OpenAI shape), and SSE error events."""

from __future__ import annotations

from typing import Any

import orjson

from aiguillage.sidecar.httpserver import Response


def error_body(message: str, type_: str, code: str, **extra: Any) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": None, "code": code, **extra}}
    )


def error(
    status: int,
    message: str,
    type_: str,
    code: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        status,
        error_body(message, type_, code, **extra),
        content_type="application/json",
        headers=headers,
    )


def sse_error(message: str, code: str) -> bytes:
    """An OpenAI-style error chunk: the openai SDK raises APIError when it reads it."""
    return b"data: " + error_body(message, "upstream_error", code) + b"\n\n"


# The codes of the answers the HTTP server gives itself, before any handler runs.
_SERVER_CODES = {
    400: ("invalid_request_error", "malformed_request"),
    404: ("invalid_request_error", "unknown_path"),
    431: ("invalid_request_error", "headers_too_large"),
}


def server_error(status: int, message: str) -> Response:
    """The HTTP server's own answers (a request that is not HTTP, headers too large, a
    failed handler) in the OpenAI shape: the request was not read far enough to know more."""
    type_, code = _SERVER_CODES.get(status, ("server_error", "internal_error"))
    return error(status, message, type_, code)
