"""Error bodies the client's SDK understands (OpenAI shape), and SSE error events."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


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
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, type_, code, **extra),
        content_type="application/json",
        headers=headers,
    )


def sse_error(message: str, code: str) -> bytes:
    """An OpenAI-style error chunk: the openai SDK raises APIError when it reads it."""
    return b"data: " + error_body(message, "upstream_error", code) + b"\n\n"
