"""The admin API under ``/_sim/``, through which another process drives a simulator.

:class:`~.base.Simulator` mounts these routes next to the provider's API when it starts. They
give HTTP access to what its Python API offers, for simulators run with
``python -m aiguillage.devtools.simulators`` (``make dev``, the benchmarks):

- ``POST /_sim/faults`` with ``{"faults": [{"kind": "status", "status": 503}, ...],
  "repeat": false}`` replaces the fault plan (a bare fault object is accepted too; the kinds are
  described in :mod:`.faults`);
- ``GET /_sim/faults`` shows what is left of it, ``DELETE /_sim/faults`` clears it;
- ``GET /_sim/requests`` returns ``{"requests": [...]}``, the request log of :mod:`.recording`,
  oldest first (header names lower-cased; a repeated header keeps its last value);
  ``DELETE /_sim/requests`` clears it;
- ``GET /_sim/config`` shows name, kind, chunks, chunk interval and whether a key is required;
  ``POST /_sim/config`` with ``{"chunks": 64, "chunk_interval": 0.01}`` changes the stream shape,
  ``{"echo": true}`` makes text answers repeat the request's last text (1-3 characters per
  streamed delta);
- ``GET /_sim/health`` returns ``{"status": "ok", "name": ..., "kind": ...}``.

Admin calls need no credentials and are neither logged nor subject to faults. Malformed
bodies get a 400 with ``{"error": "<what was wrong>"}``. This module depends only on the few
members of the simulator listed in :class:`Administered`, not on :mod:`.base`.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from aiohttp import web

from .faults import FaultPlan
from .recording import RecordedRequest

__all__ = ["Administered", "add_admin_routes"]


class Administered(Protocol):
    """What the admin API needs of a simulator."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def faults(self) -> FaultPlan: ...

    @property
    def requests(self) -> list[RecordedRequest]: ...

    def clear_requests(self) -> None: ...

    def config_dict(self) -> dict[str, Any]: ...

    def configure(
        self,
        *,
        chunks: int | None = None,
        chunk_interval: float | None = None,
        echo: bool | None = None,
    ) -> None: ...


def add_admin_routes(app: web.Application, sim: Administered) -> None:
    """Add the ``/_sim/`` routes driving ``sim`` to ``app``."""
    admin = _Admin(sim)
    app.router.add_get("/_sim/health", admin.health)
    app.router.add_get("/_sim/faults", admin.get_faults)
    app.router.add_post("/_sim/faults", admin.set_faults)
    app.router.add_delete("/_sim/faults", admin.clear_faults)
    app.router.add_get("/_sim/requests", admin.get_requests)
    app.router.add_delete("/_sim/requests", admin.clear_requests)
    app.router.add_get("/_sim/config", admin.get_config)
    app.router.add_post("/_sim/config", admin.set_config)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": f"invalid JSON: {exc}"}).decode(),
            content_type="application/json",
        ) from exc


class _Admin:
    """The admin handlers of one simulator."""

    def __init__(self, sim: Administered) -> None:
        self._sim = sim

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "name": self._sim.name, "kind": self._sim.kind})

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self._sim.faults.to_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        data = await _body(request)
        faults = self._sim.faults
        try:
            if isinstance(data, dict) and "kind" in data:
                faults.set([data])
            elif isinstance(data, dict) and isinstance(data.get("faults"), list):
                repeat = data.get("repeat", False)
                if not isinstance(repeat, bool):
                    raise ValueError("'repeat' must be a boolean")
                faults.set(data["faults"], repeat=repeat)
            else:
                raise ValueError('expected {"faults": [...], "repeat": false} or one fault object')
        except ValueError as exc:
            return _json({"error": str(exc)}, status=400)
        return _json(faults.to_dict())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._sim.faults.clear()
        return _json(self._sim.faults.to_dict())

    async def get_requests(self, request: web.Request) -> web.Response:
        return _json({"requests": [r.to_dict() for r in self._sim.requests]})

    async def clear_requests(self, request: web.Request) -> web.Response:
        self._sim.clear_requests()
        return _json({"requests": []})

    async def get_config(self, request: web.Request) -> web.Response:
        return _json(self._sim.config_dict())

    async def set_config(self, request: web.Request) -> web.Response:
        data = await _body(request)
        if not isinstance(data, dict) or set(data) - {"chunks", "chunk_interval", "echo"}:
            return _json(
                {"error": "only 'chunks', 'chunk_interval' and 'echo' can be set"}, status=400
            )
        chunks = data.get("chunks")
        interval = data.get("chunk_interval")
        echo = data.get("echo")
        try:
            if echo is not None and not isinstance(echo, bool):
                raise ValueError("'echo' must be a boolean")
            if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)):
                raise ValueError("'chunks' must be an integer")
            if interval is not None and (
                isinstance(interval, bool) or not isinstance(interval, int | float)
            ):
                raise ValueError("'chunk_interval' must be a number")
            self._sim.configure(
                chunks=chunks,
                chunk_interval=None if interval is None else float(interval),
                echo=echo,
            )
        except ValueError as exc:
            return _json({"error": str(exc)}, status=400)
        return _json(self._sim.config_dict())
