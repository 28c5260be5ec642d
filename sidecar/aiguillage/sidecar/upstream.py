"""Talking to providers over HTTP: the one boundary where the HTTP client's and asyncio's
exceptions, and whatever an adapter raises on a provider's data, become
:mod:`aiguillage.sidecar.errors` types. The client is :mod:`aiguillage.sidecar.httpclient`.

What a provider (or anything between it and the sidecar) can send, and what becomes of it:

- **Redirects** are never followed: a 3xx fails the attempt (``redirect_refused``) and the
  request never reaches the ``Location``'s origin, whose residency nobody checked. The
  attempt fails over; it is not retried (asking again gets the same redirect).
- **Statuses**: a 2xx is an answer; a 4xx/5xx is :class:`UpstreamStatus` with its body (at
  most :data:`ERROR_BODY_LIMIT` read); a final 1xx such as 101, or a status past 599, is
  ``unexpected_status``. (The client reads past an informational 1xx to the final answer; a
  provider that sends only a 1xx is waited for until the first-token deadline.)
- **Cookies**: the client keeps none. A provider's ``Set-Cookie`` is never stored, so it is
  never replayed on another client's request.
- **Bodies** are read incrementally and their *decoded* size counted (the client inflates a
  compressed body in bounded steps as it is read), so a gzip bomb or an endless body costs at
  most the route's ``sizeLimits.maxResponseBytes`` of memory before the attempt fails
  (``response_too_large``); a declared ``Content-Length`` over the limit fails at once. A
  whole answer must be JSON (``application/json``, ``text/json`` or ``*+json``; a missing
  content type is left to the adapter's parser) and not empty (``unexpected_content``).
- **Streams** must have their format's content type (``text/event-stream`` for SSE). SSE
  lines are split here (:class:`SSEParser`): lines and events up to
  ``sizeLimits.maxEventBytes`` pass (a 600 KiB Responses ``response.completed`` is
  ordinary), a longer one fails the attempt. Event names must be UTF-8. Decoders yield the
  events of each piece the network delivered as one batch, and :func:`translate` the
  client's bytes of a batch together, so that a provider sending many events at once costs
  the client's connection one write, not one per event.
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
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from aiguillage.sidecar import httpclient
from aiguillage.sidecar.adapters.base import Adapter, Call, StreamTranslator, UpstreamRequest, Usage
from aiguillage.sidecar.config import SizeLimits, Timeouts
from aiguillage.sidecar.deadline import Deadline
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


Client = httpclient.Client
Response = httpclient.Response


def new_client() -> Client:
    """The connections of one sidecar to its providers (made on the serving loop)."""
    return httpclient.Client()


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


async def send(
    client: Client,
    req: UpstreamRequest,
    timeouts: Timeouts,
    task: asyncio.Task[Any] | None = None,
) -> Response:
    """Send ``req``; return the response once its headers arrived with a 2xx status
    (``task``: the one running this, looked up when not given).

    Raises an AttemptError for everything else. The caller owns (and must release)
    the returned response. The route's total deadline is the caller's to enforce.
    """
    task = task or asyncio.current_task()
    assert task is not None
    try:
        with Deadline(task, task.get_loop().time() + timeouts.first_token):
            resp = await client.post(
                req.url,
                req.headers,
                req.body,
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.stream_idle,
            )
    except TimeoutError as exc:
        raise TimedOut("no answer before the first-token deadline") from exc
    except httpclient.ConnectTimeout as exc:
        raise TimedOut("connect timeout") from exc
    except httpclient.ReadTimeout as exc:
        raise TimedOut("read timeout") from exc
    except (httpclient.ConnectError, httpclient.ConnectionCut) as exc:
        raise ConnectFailed(_named(exc)) from exc
    except httpclient.ClientError as exc:
        raise UpstreamProtocol(_named(exc)) from exc
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


def _named(exc: BaseException) -> str:
    """What failed, for the audit: the exception's type and, for the client's own errors
    (which never quote what the provider sent), what it says."""
    if isinstance(exc, httpclient.ClientError):
        cause = exc.__cause__
        return f"{type(cause).__name__}" if cause is not None else str(exc)
    return type(exc).__name__


def _origin(base: str, location: str | None) -> str | None:
    """scheme://host[:port] a redirect points to (never its path or query, which may carry
    tokens), for the audit record."""
    if not location:
        return None
    try:
        target = urlsplit(urljoin(base, location.strip()))
        port = target.port
    except ValueError:
        return "an unparsable location"
    if not target.scheme or not target.hostname:
        return None
    host = f"[{target.hostname}]" if ":" in target.hostname else target.hostname
    default = {"http": 80, "https": 443}.get(target.scheme)
    return f"{target.scheme}://{host}" + (f":{port}" if port and port != default else "")


async def read_body(resp: Response, limit: int) -> bytes:
    """The whole decoded body, or ResponseTooLarge as soon as it passes ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit and not resp.headers.get("content-encoding"):
        raise ResponseTooLarge(f"provider announced a {declared}-byte answer (limit {limit})")
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.chunks():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"provider's answer passed {limit} bytes")
            parts.append(chunk)
    except httpclient.ReadTimeout as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except httpclient.ClientError as exc:
        raise UpstreamProtocol(f"answer cut short ({type(exc).__name__})") from exc
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _media_type(resp: Response) -> str | None:
    value = resp.headers.get("content-type")
    return value.partition(";")[0].strip().lower() if value is not None else None


async def read_answer(
    resp: Response, adapter: Adapter, call: Call, model: str, limits: SizeLimits
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

Event = tuple[str | None, bytes]
# A decoder yields the events of each piece of the body as one batch (never an empty one).
Events = AsyncGenerator[list[Event], None]
Decoder = Callable[[Response, SizeLimits], Events]


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
        cap = self._cap
        data = self._data
        try:
            # Whole events of one "data: " line (nearly every event of an OpenAI-style stream)
            # one step each, while no event is half read; then line by line from the first
            # other one. Same rules either way.
            if not data and self._event is None:
                while (
                    (end := chunk.find(b"\n", start)) >= 0
                    and chunk.startswith(b"\n", end + 1)
                    and end - start <= cap
                    and chunk.startswith(b"data: ", start)
                ):
                    out.append((None, chunk[start + 6 : end]))
                    start = end + 2
            # Blank lines and "data: " lines inline; the others through _line.
            while (end := chunk.find(b"\n", start)) >= 0:
                if end == start:
                    if data:
                        out.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    self._event, self._data, self._size = None, [], 0
                    data = self._data
                elif end - start <= cap and chunk.startswith(b"data: ", start):
                    piece = chunk[start + 6 : end]
                    self._size += len(piece) + 1
                    if self._size > cap:
                        raise ResponseTooLarge(f"provider sent an SSE event over {cap} bytes")
                    data.append(piece)
                else:
                    self._line(chunk[start:end], out)
                    data = self._data
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


async def sse_events(resp: Response, limits: SizeLimits) -> Events:
    """Server-sent events of ``resp`` as (event name, data) pairs, a batch per piece of the
    body that completed any (see :class:`SSEParser`)."""
    parser = SSEParser(limits.max_event_bytes)
    async with stream_errors():
        async for chunk in resp.chunks():
            batch = parser.feed(chunk)
            if batch:
                yield batch
    last = parser.end()
    if last:
        yield last


@contextlib.asynccontextmanager
async def stream_errors() -> AsyncIterator[None]:
    """The HTTP client's errors while a stream is read, as attempt errors."""
    try:
        yield
    except httpclient.ReadTimeout as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except httpclient.ClientError as exc:
        raise UpstreamProtocol(f"stream cut ({type(exc).__name__})") from exc


# Adapter.stream_format -> the provider's stream framing. Other framings (e.g. AWS
# event-stream) register here from their adapter's module.
STREAM_FORMATS: dict[str, StreamFormat] = {
    "sse": StreamFormat(sse_events, frozenset({"text/event-stream"})),
}


async def translate(
    resp: Response,
    stream_format: str,
    translator: StreamTranslator,
    limits: SizeLimits,
) -> AsyncGenerator[list[bytes], None]:
    """The client's stream: for each batch of provider events, the client's chunks (maybe
    none). A translator failing on an event of a batch comes after the chunks of the events
    before it.

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
    feed_all = translator.feed_all
    try:
        async for batch in events:
            out: list[bytes] = []
            try:
                feed_all(batch, out)
            except BaseException:
                if out:
                    yield out  # what came before the failing event reaches the client first
                raise
            yield out
    except AttemptError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc
    finally:
        await events.aclose()
