"""Which handler serves a request: by method and path, exact paths first, then patterns.

Patterns name their variable parts as ``{name}`` (one segment) or ``{name:regex}``; what
they matched is the request's ``match_info``. A path nothing matches goes to the fallback
handler (the sidecar's 404/405 in the client's API shape), which can ask
:meth:`Router.allowed` which methods the path has.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiguillage.sidecar.httpserver.request import Request
    from aiguillage.sidecar.httpserver.response import StreamResponse

Handler = Callable[["Request"], Awaitable["StreamResponse"]]

_VARIABLE = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    regex, last = "", 0
    for found in _VARIABLE.finditer(pattern):
        regex += re.escape(pattern[last : found.start()])
        regex += f"(?P<{found.group(1)}>{found.group(2) or '[^/]+'})"
        last = found.end()
    return re.compile(regex + re.escape(pattern[last:]))


class Router:
    """Handlers by method and path; ``add_get`` serves ``HEAD`` too (without the body)."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self.fallback: Handler | None = None

    def add(self, method: str, path: str, handler: Handler) -> None:
        if _VARIABLE.search(path) is None:
            self._exact.setdefault(path, {})[method] = handler
            return
        regex = _compile(path)
        for known, methods in self._patterns:
            if known.pattern == regex.pattern:
                methods[method] = handler
                return
        self._patterns.append((regex, {method: handler}))

    def add_get(self, path: str, handler: Handler) -> None:
        self.add("GET", path, handler)
        self.add("HEAD", path, handler)

    def add_post(self, path: str, handler: Handler) -> None:
        self.add("POST", path, handler)

    def _methods(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        methods = self._exact.get(path)
        if methods is not None:
            return methods, {}
        for regex, methods in self._patterns:
            found = regex.fullmatch(path)
            if found is not None:
                return methods, found.groupdict()
        return None

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str]]:
        """The handler of ``method`` on ``path`` and what its pattern matched; the fallback
        (and no match info) when there is none."""
        found = self._methods(path)
        if found is not None:
            handler = found[0].get(method)
            if handler is not None:
                return handler, found[1]
        return self.fallback, {}

    def allowed(self, path: str) -> set[str]:
        """The methods ``path`` is served with (empty: an unknown path)."""
        found = self._methods(path)
        return set(found[0]) if found is not None else set()
