"""The sidecar's own HTTP/1.1 server, on the loop's transports and ``httptools`` (llhttp).

It replaces ``aiohttp.web``, whose import alone cost the sidecar ~14 MB of idle memory and
whose request machinery (a task and a stream reader per connection, multidict headers,
``StreamResponse.prepare``) a large share of its CPU per request. The API is the small part
of aiohttp's the sidecar used: :class:`Request` (``method``, ``path``, ``headers`` with
``get``/``getall``/``in``, ``content_type``, ``read()``, ``match_info``), :class:`Response`,
:class:`StreamResponse` (``prepare``, ``write``, ``write_eof``), a :class:`Router`, and the
:class:`Server` that listens, drains and closes. One concept per module: :mod:`.headers`,
:mod:`.request`, :mod:`.response`, :mod:`.router`, :mod:`.protocol` (one connection: what it
guarantees is listed there), :mod:`.server`.
"""

from aiguillage.sidecar.httpserver.headers import Headers
from aiguillage.sidecar.httpserver.request import BodyTooLarge, MalformedBody, Request
from aiguillage.sidecar.httpserver.response import Response, StreamResponse
from aiguillage.sidecar.httpserver.router import Handler, Router
from aiguillage.sidecar.httpserver.server import Server

__all__ = [
    "BodyTooLarge",
    "Handler",
    "Headers",
    "MalformedBody",
    "Request",
    "Response",
    "Router",
    "Server",
    "StreamResponse",
]
