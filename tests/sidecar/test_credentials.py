"""What a credential may contain (``credentials.py``), shared by sidecar and operator."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.credentials import InvalidCredential, credential_problem, credential_text


def test_surrounding_whitespace_is_dropped() -> None:
    assert credential_text(b"  sk-abc\r\n") == "sk-abc"
    assert credential_text(b'{"accessKeyId": "AKID", "secretAccessKey": "s"}\n').startswith("{")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"sk\x7fx", "contains a control character (DEL) at offset 2"),
        (b"sk\tx", "contains a control character (TAB) at offset 2"),
        (b"sk\x1bx", "contains a control character at offset 2"),
        (b"\xc3\x28", "is not UTF-8 text (invalid byte at offset 0)"),
        (b"", "is empty"),
    ],
)
def test_problems_never_quote_the_value(raw: bytes, problem: str) -> None:
    assert credential_problem(raw) == problem
    with pytest.raises(InvalidCredential) as caught:
        credential_text(raw)
    assert str(caught.value) == problem
