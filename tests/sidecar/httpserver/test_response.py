"""Answers (``httpserver/response.py``): heads built once, line breaks refused."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.httpserver import Request, Response, StreamResponse
from aiguillage.sidecar.httpserver.response import encode_head
from tests.sidecar.httpserver._raw import get, read_answer
from tests.sidecar.httpserver.conftest import Start


def test_the_head_has_status_date_headers_and_framing() -> None:
    head = encode_head(404, {"x-a": "1"}, "content-length: 0\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 404 Not Found"
    assert lines[1].startswith(b"date: ")
    assert lines[1].endswith(b" GMT")
    assert lines[2:] == [b"x-a: 1", b"content-length: 0", b"", b""]


@pytest.mark.parametrize("value", ["a\r\nset-cookie: x=1", "a\nb", "a\rb"])
def test_a_line_break_in_a_header_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_head(200, {"x-request-id": value}, "")


async def test_a_handler_header_with_a_line_break_is_a_500_not_an_injected_header(
    start: Start,
) -> None:
    async def injects(request: Request) -> StreamResponse:
        return Response(200, headers={"x-id": "a\r\nset-cookie: x=1"})

    running = await start({"/inject": injects})
    reader, writer = await running.connect()
    writer.write(get("/inject"))
    answer = await read_answer(reader)
    assert answer.status == 500
    assert "set-cookie" not in answer.headers
    writer.close()


async def test_text_answers_are_utf8_plain_text(start: Start) -> None:
    async def text(request: Request) -> StreamResponse:
        return Response(text="ok é\n")

    running = await start({"/text": text})
    reader, writer = await running.connect()
    writer.write(get("/text"))
    answer = await read_answer(reader)
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.body == "ok é\n".encode()
    writer.close()
