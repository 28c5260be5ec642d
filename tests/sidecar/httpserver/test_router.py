"""Routing (``httpserver/router.py``): exact paths, patterns, methods, the fallback."""

from __future__ import annotations

from aiguillage.sidecar.httpserver import Request, Response, Router, StreamResponse


async def one(request: Request) -> StreamResponse:
    return Response(200)


async def two(request: Request) -> StreamResponse:
    return Response(201)


async def fallback(request: Request) -> StreamResponse:
    return Response(404)


def test_exact_paths_patterns_and_the_fallback() -> None:
    router = Router()
    router.add_post("/v1/chat/completions", one)
    router.add_get("/v1/models/{model:.+}", two)
    router.fallback = fallback
    assert router.resolve("POST", "/v1/chat/completions") == (one, {})
    assert router.resolve("GET", "/v1/models/org/m-1") == (two, {"model": "org/m-1"})
    assert router.resolve("HEAD", "/v1/models/x") == (two, {"model": "x"})
    assert router.resolve("GET", "/v1/chat/completions") == (fallback, {})
    assert router.resolve("GET", "/v1/models/") == (fallback, {})
    assert router.resolve("GET", "/elsewhere") == (fallback, {})


def test_allowed_names_the_methods_of_a_known_path() -> None:
    router = Router()
    router.add_post("/v1/messages", one)
    router.add_get("/v1/models/{model}", two)
    assert router.allowed("/v1/messages") == {"POST"}
    assert router.allowed("/v1/models/m") == {"GET", "HEAD"}
    assert router.allowed("/v1/models/a/b") == set()  # {model} is one segment
    assert router.allowed("/nowhere") == set()
