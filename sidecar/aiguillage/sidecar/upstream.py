"""Talking to providers over HTTP: the one boundary where aiohttp and asyncio
exceptions become :mod:`aiguillage.sidecar.errors` types.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable, Mapping
from email.utils import parsedate_to_datetime
from time import time

import aiohttp

from aiguillage.sidecar.adapters.base import UpstreamRequest
from aiguillage.sidecar.config import Timeouts
from aiguillage.sidecar.errors import (
    AttemptError,
    ConnectFailed,
    TimedOut,
    UpstreamProtocol,
    UpstreamStatus,
)


def new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
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
            resp = await session.post(req.url, data=req.body, headers=req.headers, timeout=timeout)
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
    if resp.status >= 300:
        try:
            body = await read_body(resp)
        except AttemptError:
            body = b""
        finally:
            resp.release()
        raise UpstreamStatus(
            resp.status,
            body,
            resp.headers.get("content-type", "application/json"),
            retry_after(resp.headers),
        )
    return resp


async def read_body(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.read()
    except aiohttp.ServerTimeoutError as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamProtocol(f"answer cut short ({type(exc).__name__})") from exc


async def sse_events(
    resp: aiohttp.ClientResponse,
) -> AsyncGenerator[tuple[str | None, bytes], None]:
    """Server-sent events as (event name, data) pairs; multi-line data joined by \\n."""
    event: str | None = None
    data: list[bytes] = []
    content = resp.content
    try:
        while True:
            line = await content.readline()
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = None, []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode()
            # comments (":") and unknown fields are ignored, as the SSE spec says
    except aiohttp.ServerTimeoutError as exc:
        raise TimedOut("stream idle timeout") from exc
    except TimeoutError as exc:
        raise TimedOut("deadline") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamProtocol(f"stream cut ({type(exc).__name__})") from exc
    if data:
        yield event, b"\n".join(data)


StreamDecoder = Callable[[aiohttp.ClientResponse], AsyncGenerator[tuple[str | None, bytes], None]]

# Adapter.stream_format -> decoder of the provider's stream framing. Decoders of other
# framings (e.g. AWS event-stream) register here from their adapter's module.
STREAM_DECODERS: dict[str, StreamDecoder] = {"sse": sse_events}


def stream_events(
    resp: aiohttp.ClientResponse, stream_format: str
) -> AsyncGenerator[tuple[str | None, bytes], None]:
    return STREAM_DECODERS[stream_format](resp)
