"""Request ids (``request_id.py``): the client's when it is a sane token, else a generated one."""

from __future__ import annotations

import pytest

from aiguillage.sidecar.request_id import MAX_LENGTH, next_request_id, request_id
from tests.sidecar.conftest import MESSAGES, RunningSidecar


@pytest.mark.parametrize(
    "value",
    ["abc", "req_01HZX9", "a.b:c-d_e", "0" * MAX_LENGTH, "4bf92f3577b34da6a3ce929d0e0e4736"],
)
def test_sane_client_ids_are_kept(value: str) -> None:
    assert request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "0" * (MAX_LENGTH + 1),
        "abc\r\nx-injected: 1",
        "abc\n",
        "has space",
        'quote"',
        "é",
        "a/b",
        "<script>",
    ],
)
def test_other_values_are_replaced(value: str | None) -> None:
    generated = request_id(value)
    assert generated != value
    assert len(generated) == 32
    assert generated.isalnum()


def test_generated_ids_are_unique() -> None:
    ids = {next_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_the_client_id_is_echoed_and_audited_only_when_sane(sidecar: RunningSidecar) -> None:
    body = {"model": "chat", "messages": MESSAGES}
    kept = sidecar.raw("POST", "/v1/chat/completions", json=body, headers={"x-request-id": "r-1"})
    assert kept.headers["x-request-id"] == "r-1"
    assert sidecar.audit_for("r-1")["outcome"] == "ok"

    huge = "x" * 5000
    replaced = sidecar.raw(
        "POST", "/v1/chat/completions", json=body, headers={"x-request-id": huge}
    )
    assert replaced.status == 200
    rid = replaced.headers["x-request-id"]
    assert rid != huge
    assert len(rid) == 32
    assert sidecar.audit_for(rid)["outcome"] == "ok"
    assert huge.encode() not in sidecar.audit_path.read_bytes()
