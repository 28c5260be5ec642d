"""Raw HTTP/1.1 on a socket, for tests of the sidecar's server: requests written byte for
byte, answers read with a small parser of its own (not the server's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

# Generous: the machine is shared; nothing here waits this long when the code works.
WITHIN = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    interim: list[int] = field(default_factory=list)


async def read_answer(reader: asyncio.StreamReader, head_request: bool = False) -> Answer:
    """One answer: status line, headers, then the body as its framing says (Content-Length,
    chunked, or up to the connection's end). Interim 1xx answers are collected and skipped."""
    interim: list[int] = []
    while True:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                assert name.lower() not in headers, f"header {name} sent twice"
                headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            interim.append(status)
            continue
        break
    if head_request:
        return Answer(status, headers, b"", interim)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WITHIN)
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), WITHIN))[:-2], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), WITHIN)
            assert chunk[-2:] == b"\r\n"
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await asyncio.wait_for(reader.read(), WITHIN)
    return Answer(status, headers, body, interim)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (nothing more to read)."""
    try:
        return await asyncio.wait_for(reader.read(), WITHIN) == b""
    except ConnectionResetError:
        return True


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, *headers: str, version: str = "1.1", method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
