"""Talking to providers over HTTP: the one boundary where aiohttp and asyncio exceptions,
and whatever an adapter raises on a provider's data, become :mod:`aiguillage.sidecar.errors`
types.

What a provider (or anything between it and the sidecar) can send, and what becomes of it:

- **Redirects** are never followed: a 3xx fails the attempt (``redirect_refused``) and the
  request never reaches the ``Location``'s origin, whose residency nobody checked. The
  attempt fails over; it is not retried (asking again gets the same redirect).
- **Statuses**: a 2xx is an answer; a 4xx/5xx is :class:`UpstreamStatus` with its body (at
  most :data:`ERROR_BODY_LIMIT` read); a final 1xx such as 101, or a status past 599, is
  ``unexpected_status``. (aiohttp reads past an informational 1xx to the final answer; a
  provider that sends only a 1xx is waited for until the first-token deadline.)
- **Cookies**: the session's jar is a :class:`aiohttp.DummyCookieJar`. A provider's
  ``Set-Cookie`` is never stored, so it is never replayed on another client's request.
- **Bodies** are read incrementally and their *decoded* size counted (aiohttp inflates a
  compressed body in bounded steps as it is read), so a gzip bomb or an endless body costs at
  most the route's ``sizeLimits.maxResponseBytes`` of memory before the attempt fails
  (``response_too_large``); a declared ``Content-Length`` over the limit fails at once. A
  whole answer must be JSON (``application/json``, ``text/json`` or ``*+json``; a missing
  content type is left to the adapter's parser) and not empty (``unexpected_content``).
- **Streams** must have their format's content type (``text/event-stream`` for SSE). SSE
  lines are split here rather than by aiohttp's ``readline``, which raises ``ValueError`` past
  its buffer's high-water mark: lines and events up to ``sizeLimits.maxEventBytes`` pass (a
  600 KiB Responses ``response.completed`` is ordinary), a longer one fails the attempt.
  Event names must be UTF-8.
- **Adapter failures**: :func:`read_answer` and :func:`translate` run the adapter's
  ``read_response``, the stream decoder and the stream translator's ``feed``. Any exception
  they raise that is not an AttemptError (a ``TypeError`` on a field of the wrong type, a
  ``UnicodeDecodeError``...) becomes a :class:`MalformedAnswer` naming the exception's type
  only: its message could quote the answer.

Before the client's first byte every one of these fails over to the next target; after it,
the stream ends with an error event (see :mod:`aiguillage.sidecar.forward`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

import aiohttp
import yarl

from aiguillage.sidecar.adapters.base import Adapter, Call, StreamTranslator, UpstreamRequest, Usage
from aiguillage.sidecar.config import SizeLimits, Timeouts
from aiguillage.sidecar.errors import (
    AttemptError,
    ConnectFailed,
    MalformedAnswer,
    Redirected,
    ResponseTooLarge,
    TimedOut,
    UnexpectedContent,
    UnexpectedStatus,
    UpstreamProtocol,
    UpstreamStatus,
)

# Enough for any provider's error message; an error body past it is not relayed.
ERROR_BODY_LIMIT = 1024 * 1024
JSON_TYPES = ("application/json", "text/json")


def new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
        # One session serves every client of the pod: a cookie stored for one request would
        # be sent on the next, whoever made it.
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent",),
        json_serialize=None,  # type: ignore[arg-type]  # bodies are pre-serialised
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait (Retry-After, retry-after-ms), if any."""
    get = headers.get
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time())
        except (TypeError, ValueError):
            return None


@functools.lru_cache(maxsize=256)
def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for a route (built once per route's settings, not per request)."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect, sock_read=timeouts.stream_idle
    )


async def send(
    session: aiohttp.ClientSession, req: UpstreamRequest, timeouts: Timeouts
) -> aiohttp.ClientResponse:
    """Send ``req``; return the response once its headers arrived with a 2xx status.

    Raises an AttemptError for everything else. The caller owns (and must release)
    the returned response. The route's total deadline is the caller's to enforce.
    """
    loop = asyncio.get_running_loop()
    first_byte = loop.time() + timeouts.first_token
    timeout = client_timeout(timeouts)
    try:
        async with asyncio.timeout_at(first_byte):
            resp = await session.post(
                req.url,
                data=req.body,
                headers=req.headers,
                timeout=timeout,
                allow_redirects=False,
            )
    except TimeoutError as exc:
        raise TimedOut("no answer before the first-token deadline") from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise TimedOut("connect timeout") from exc
    except aiohttp.ServerTimeoutError as exc:
        raise TimedOut("read timeout") from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise ConnectFailed(type(exc).__name__) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamProtocol(type(exc).__name__) from exc
    status = resp.status
    if 200 <= status < 300:
        return resp
    if 300 <= status < 400 or not 400 <= status < 600:
        resp.close()  # the body of a redirect or a nonsense status is not read at all
        if 300 <= status < 400:
            raise Redirected(status, _origin(resp.url, resp.headers.get("location")))
        raise UnexpectedStatus(status)
    try:
        body = await read_body(resp, ERROR_BODY_LIMIT)
    except AttemptError:
        body = b""
    finally:
        resp.release()
    raise UpstreamStatus(
        status,
        body,
        resp.headers.get("content-type", "application/json"),
        retry_after(resp.headers),
    )


def _origin(base: yarl.URL, location: str | None) -> str | None:
    """scheme://host[:port] a redirect points to (never its path or query, which may carry
    tokens), for the audit record."""
    if not location:
        return None
    try:
        target = base.join(yarl.URL(location))
    except ValueError:
        return "an unparsable location"
    return str(target.origin()) if target.absolute else None


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole decoded body, or ResponseTooLarge as soon as it passes ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit and not resp.headers.get("content-encoding"):
        raise ResponseTooLarge(f"provider announced a {declared}-byte answer (limit {limit})")
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"provider's answer passed {limit} bytes")
            parts.append(chunk)
    except aiohttp.ServerTimeoutError as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamProtocol(f"answer cut short ({type(exc).__name__})") from exc
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _media_type(resp: aiohttp.ClientResponse) -> str | None:
    value = resp.headers.get("content-type")
    return value.partition(";")[0].strip().lower() if value is not None else None


async def read_answer(
    resp: aiohttp.ClientResponse, adapter: Adapter, call: Call, model: str, limits: SizeLimits
) -> tuple[bytes, Usage]:
    """The client's answer and its usage from a whole (non-streamed) 2xx response of the
    provider's ``model``.

    Releases ``resp``.
    """
    try:
        media = _media_type(resp)
        if media is not None and not (media in JSON_TYPES or media.endswith("+json")):
            raise UnexpectedContent(f"provider answered {resp.status} with {media}, not JSON")
        raw = await read_body(resp, limits.max_response_bytes)
    finally:
        resp.release()  # closes the connection instead when the body was not read to its end
    if not raw:
        raise UnexpectedContent(f"provider answered {resp.status} with an empty body")
    try:
        return adapter.read_response(call, raw, model)
    except AttemptError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: Exception) -> MalformedAnswer:
    # Only the type: the message of e.g. a KeyError or ValueError may quote the answer.
    return MalformedAnswer(f"provider's answer could not be read ({type(exc).__name__})")


# -- streams -------------------------------------------------------------------------------------

Events = AsyncGenerator[tuple[str | None, bytes], None]
Decoder = Callable[[aiohttp.ClientResponse, SizeLimits], Events]


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """How a provider frames a streamed answer: its decoder and its content types."""

    decode: Decoder
    content_types: frozenset[str]


class SSEParser:
    """Splits server-sent events out of a byte stream fed in arbitrary pieces.

    Lines end with LF, CRLF or a lone CR, as the SSE spec says (so no event name or data
    line holds a CR a relay would pass on); multi-line data is joined by \\n. A line or an
    event's data past ``cap`` bytes raises ResponseTooLarge, an event name that is not UTF-8
    MalformedAnswer. Events completed before such an error are returned first, and the
    error raised at the next call: what the provider sent reaches the client in its order,
    however the network cut it. A line cut across pieces is kept as a list of pieces
    (joined once its end arrives), so a long line costs linear time.
    """

    __slots__ = ("_cap", "_data", "_event", "_failed", "_pending", "_pending_size", "_size")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._event: str | None = None
        self._data: list[bytes] = []
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._failed: MalformedAnswer | None = None

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        """The events completed by ``chunk``."""
        if self._failed is not None:
            raise self._failed
        if chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size > self._cap:
                raise ResponseTooLarge(f"provider sent an SSE line over {self._cap} bytes")
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
        held = b""
        if chunk.find(b"\r") >= 0:
            if chunk.endswith(b"\r"):  # maybe the first half of a CRLF: wait for the next piece
                chunk, held = chunk[:-1], b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[tuple[str | None, bytes]] = []
        start = 0
        try:
            while (end := chunk.find(b"\n", start)) >= 0:
                self._line(chunk[start:end], out)
                start = end + 1
        except MalformedAnswer as exc:
            if not out:
                raise
            self._failed = exc
            return out
        if start < len(chunk) or held:
            rest = chunk[start:] + held
            if len(rest) > self._cap:
                raise ResponseTooLarge(f"provider sent an SSE line over {self._cap} bytes")
            self._pending, self._pending_size = [rest], len(rest)
        return out

    def end(self) -> list[tuple[str | None, bytes]]:
        """The last event, when the stream stops without a blank line after it."""
        if self._failed is not None:
            raise self._failed
        out: list[tuple[str | None, bytes]] = []
        if self._pending:
            rest = b"".join(self._pending).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self._pending = []
            for line in rest.split(b"\n"):
                self._line(line, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[tuple[str | None, bytes]]) -> None:
        if len(line) > self._cap:
            raise ResponseTooLarge(f"provider sent an SSE line over {self._cap} bytes")
        if not line:
            if self._data:
                out.append((self._event, b"\n".join(self._data)))
            self._event, self._data, self._size = None, [], 0
        elif line.startswith(b"data:"):
            piece = line[6:] if line[5:6] == b" " else line[5:]
            self._size += len(piece) + 1
            if self._size > self._cap:
                raise ResponseTooLarge(f"provider sent an SSE event over {self._cap} bytes")
            self._data.append(piece)
        elif line.startswith(b"event:"):
            try:
                self._event = line[6:].strip().decode()
            except UnicodeDecodeError:
                raise MalformedAnswer("provider sent an SSE event name that is not UTF-8") from None
        # comments (":") and unknown fields are ignored, as the SSE spec says


async def sse_events(resp: aiohttp.ClientResponse, limits: SizeLimits) -> Events:
    """Server-sent events of ``resp`` as (event name, data) pairs (see :class:`SSEParser`)."""
    parser = SSEParser(limits.max_event_bytes)
    try:
        async for chunk in resp.content.iter_any():
            for item in parser.feed(chunk):
                yield item
    except aiohttp.ServerTimeoutError as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamProtocol(f"stream cut ({type(exc).__name__})") from exc
    for item in parser.end():
        yield item


# Adapter.stream_format -> the provider's stream framing. Other framings (e.g. AWS
# event-stream) register here from their adapter's module.
STREAM_FORMATS: dict[str, StreamFormat] = {
    "sse": StreamFormat(sse_events, frozenset({"text/event-stream"})),
}


async def translate(
    resp: aiohttp.ClientResponse,
    stream_format: str,
    translator: StreamTranslator,
    limits: SizeLimits,
) -> AsyncGenerator[list[bytes] | tuple[bytes, ...], None]:
    """The client's stream: for each provider event, the client's chunks (maybe none).

    Checks the content type first; any exception of the decoder or the translator that is
    not an AttemptError becomes a MalformedAnswer (see the module docstring).
    """
    fmt = STREAM_FORMATS[stream_format]
    media = _media_type(resp)
    if media not in fmt.content_types:
        expected = ", ".join(sorted(fmt.content_types))
        raise UnexpectedContent(
            f"provider answered a stream request {resp.status} with {media or 'no content type'}"
            f", not {expected}"
        )
    events = fmt.decode(resp, limits)
    try:
        async for event, data in events:
            out = translator.feed(event, data)
            yield out if isinstance(out, list | tuple) else list(out)
    except AttemptError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc
    finally:
        await events.aclose()
