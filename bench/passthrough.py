"""The "Python floor": the least an aiohttp proxy can do (no parsing, default asyncio loop).

    python bench/passthrough.py UPSTREAM_URL LISTEN_PORT

Forwards every request's method, path, headers and body to UPSTREAM_URL and streams the answer
back chunk by chunk (so SSE passes through), over one pooled client session.
"""

import sys

import aiohttp
from aiohttp import web

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


async def forward(request: web.Request) -> web.StreamResponse:
    session: aiohttp.ClientSession = request.app["session"]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    url = request.app["upstream"] + request.path_qs
    async with session.request(
        request.method, url, headers=headers, data=await request.read()
    ) as up:
        response = web.StreamResponse(status=up.status, headers={
            k: v for k, v in up.headers.items() if k.lower() not in HOP})  # fmt: skip
        await response.prepare(request)
        async for chunk in up.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def make_app() -> web.Application:
    app = web.Application()
    app["upstream"] = sys.argv[1].rstrip("/")
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    app.on_cleanup.append(lambda a: a["session"].close())
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[2]), access_log=None)
