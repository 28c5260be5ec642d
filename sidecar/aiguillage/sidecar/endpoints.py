"""The sidecar's endpoints that forward nothing: model listings and unknown paths.

``GET /v1/models`` and ``GET /v1/models/{id}`` describe the routes of the loaded config (a
route's model name is what clients put in ``model``). They answer in OpenAI's shape, or in
Anthropic's when the request carries ``anthropic-version`` (the ``anthropic`` SDK always
sends it), so both SDKs' ``models.list()`` and ``models.retrieve()`` work.

Every other path and method answers in the client's API error shape too, never a
plain-text page: a 404 for an unknown path, a 405 (with ``Allow``) for a known path asked
with another method. A request that looks Anthropic (``anthropic-version`` header, or a
``/v1/messages`` path) gets Anthropic's error body, anything else OpenAI's.

Handlers for the operations that do forward live in :mod:`aiguillage.sidecar.server`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from aiguillage.sidecar import responses
from aiguillage.sidecar.adapters.anthropic import error_json
from aiguillage.sidecar.guard import Guard
from aiguillage.sidecar.httpserver import Request, Response, Router
from aiguillage.sidecar.loader import Snapshot

ANTHROPIC_VERSION = "anthropic-version"
# Routes have no creation time of their own; 0 (the epoch) says so rather than inventing one.
CREATED = 0
CREATED_AT = "1970-01-01T00:00:00Z"


def looks_anthropic(request: Request) -> bool:
    return ANTHROPIC_VERSION in request.headers or request.path.startswith("/v1/messages")


def error(
    request: Request,
    status: int,
    message: str,
    code: str,
    type_: str = "invalid_request_error",
    **headers: str,
) -> Response:
    """An error in the client's API shape (see :func:`looks_anthropic`); ``type_`` is the
    OpenAI error type (Anthropic's follows from the status)."""
    if looks_anthropic(request):
        return Response(
            status,
            error_json(status, message),
            content_type="application/json",
            headers=headers,
        )
    return responses.error(status, message, type_, code, headers)


def _model(request: Request, name: str) -> dict[str, Any]:
    if ANTHROPIC_VERSION in request.headers:
        return {"type": "model", "id": name, "display_name": name, "created_at": CREATED_AT}
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "aiguillage"}


def _json(obj: Any) -> Response:
    return Response(200, orjson.dumps(obj), content_type="application/json")


def add_routes(
    router: Router, snapshot: Callable[[], Snapshot | None], guard: Guard | None = None
) -> None:
    """Add the model listings, then the catch-all for every other path (added last).

    ``guard`` refuses model listings to foreign hosts and pages (see :mod:`.guard`)."""

    def routes() -> list[str]:
        snap = snapshot()
        return list(snap.config.routes) if snap else []

    def refused(request: Request) -> Response | None:
        refusal = guard.refusal(request) if guard is not None else None
        if refusal is None:
            return None
        return error(request, refusal.status, refusal.message, refusal.code, refusal.type)

    async def list_models(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        data = [_model(request, name) for name in routes()]
        if ANTHROPIC_VERSION in request.headers:
            return _json(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        return _json({"object": "list", "data": data})

    async def get_model(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        name = request.match_info["model"]
        if name not in routes():
            return error(
                request,
                404,
                f"The model '{name}' does not exist: no route serves it "
                f"(routes: {', '.join(sorted(routes())) or 'none'})",
                "model_not_found",
            )
        return _json(_model(request, name))

    async def unknown(request: Request) -> Response:
        allowed = router.allowed(request.path)
        if allowed:
            return error(
                request,
                405,
                f"{request.method} is not allowed on {request.path} "
                f"(allowed: {', '.join(sorted(allowed))})",
                "method_not_allowed",
                Allow=", ".join(sorted(allowed)),
            )
        return error(
            request,
            404,
            f"unknown path {request.path}: the sidecar serves /v1/chat/completions, "
            "/v1/completions, /v1/embeddings, /v1/responses, /v1/models, /v1/messages and "
            "/v1/messages/count_tokens",
            "unknown_path",
        )

    router.add_get("/v1/models", list_models)
    router.add_get("/v1/models/{model:.+}", get_model)
    router.fallback = unknown
