"""Credentials scrubbed out of what providers echo (``redact.py``), for every adapter."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aiguillage.devtools.simulators.base import Simulator
from aiguillage.sidecar.adapters import adapter_for
from aiguillage.sidecar.config import Provider
from aiguillage.sidecar.redact import REDACTED, Redactor, redactor_for
from tests.sidecar._formats import ROWS
from tests.sidecar.conftest import MESSAGES, Raw, RunningSidecar

KEY = "sk-live/abc+def"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"Incorrect API key provided: {KEY}.", f"Incorrect API key provided: {REDACTED}."),
        (f"Authorization: Bearer {KEY}", f"Authorization: Bearer {REDACTED}"),
        ('{"key": "sk-live\\/abc+def"}', f'{{"key": "{REDACTED}"}}'),  # JSON-escaped
        ("?key=sk-live%2Fabc%2Bdef&x=1", f"?key={REDACTED}&x=1"),  # percent-encoded
        (f"{KEY}{KEY}-suffix", f"{REDACTED}{REDACTED}-suffix"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_secrets_are_replaced_in_text_and_bytes(text: str, scrubbed: str) -> None:
    redactor = Redactor([KEY, "short"])
    assert redactor.text(text) == scrubbed
    assert redactor.bytes(text.encode()) == scrubbed.encode()


def test_short_secrets_are_left_alone_and_longer_ones_win() -> None:
    redactor = Redactor(["x", "sk-abcdefgh", "sk-abcdefgh-ijkl"])
    assert redactor.text("x sk-abcdefgh-ijkl sk-abcdefgh") == f"x {REDACTED} {REDACTED}"


def test_the_redactor_of_a_config_knows_every_adapter_secret() -> None:
    bedrock = Provider(api="bedrock", endpoint="http://b", options={"region": "eu-west-3"})
    aws = '{"accessKeyId": "AKIDEXAMPLE1", "secretAccessKey": "s3cr3t/key+value"}'
    adapters = {
        "b": adapter_for("bedrock")(bedrock, aws),
        "o": adapter_for("openai")(Provider(api="openai", endpoint="http://o"), "sk-openai-1"),
    }
    redactor = redactor_for(["b", "o", "missing"], adapters)
    text = "AKIDEXAMPLE1 s3cr3t/key+value sk-openai-1"
    assert redactor.text(text) == " ".join([REDACTED] * 3)


# -- through a sidecar, for every adapter --------------------------------------------------------


def secrets_of(api: str) -> list[str]:
    row = ROWS[api]
    if api != "bedrock":
        return [row.credential]
    return list(orjson.loads(row.credential).values())


def assert_scrubbed(api: str, *texts: Any) -> None:
    for text in texts:
        blob = text if isinstance(text, bytes) else orjson.dumps(text)
        for secret in secrets_of(api):
            assert secret.encode() not in blob


def ask(sc: RunningSidecar, stream: bool) -> Raw:
    body = {"model": "chat", "messages": MESSAGES, "stream": stream}
    return sc.raw("POST", "/v1/chat/completions", json=body)


def test_a_relayed_error_echoing_the_key_is_scrubbed(
    served: tuple[RunningSidecar, Simulator], request: pytest.FixtureRequest
) -> None:
    sc, sim = served
    sim.set_faults([{"kind": "echo_credentials", "status": 400}])
    resp = ask(sc, stream=False)

    assert resp.status == 400
    message = resp.json()["error"]["message"]
    assert message.startswith("Incorrect credentials provided: ")
    assert REDACTED in message
    assert_scrubbed(api_of(request), resp.body, sc.audit_for(resp.headers["x-request-id"]))


# Adapters whose stream errors quote the provider (its error type or message) in the detail.
QUOTING = ["anthropic", "bedrock", "gemini", "vertex-ai"]


def echoing_stream_error(
    served: tuple[RunningSidecar, Simulator], request: pytest.FixtureRequest, after_chunks: int
) -> tuple[str, Raw, dict[str, Any]]:
    """(format, response, audit record) of a stream whose provider's in-stream error, after
    ``after_chunks`` chunks, quotes the key in its type and message."""
    (sc, sim), api = served, api_of(request)
    echo = "bad key " + " ".join(secrets_of(api))
    fault = {"kind": "in_stream_error", "after_chunks": after_chunks}
    sim.set_faults([{**fault, "message": echo, "error_type": echo}])
    resp = ask(sc, stream=True)
    return api, resp, sc.audit_for(resp.headers["x-request-id"])


@pytest.mark.parametrize("served", QUOTING, indirect=True)
def test_attempt_details_echoing_the_key_are_scrubbed(
    served: tuple[RunningSidecar, Simulator], request: pytest.FixtureRequest
) -> None:
    api, resp, record = echoing_stream_error(served, request, after_chunks=0)

    assert resp.status == 502
    assert REDACTED in record["attempts"][0]["detail"]
    assert resp.json()["error"]["attempts"] == record["attempts"]
    assert_scrubbed(api, resp.body, record)


@pytest.mark.parametrize("served", QUOTING, indirect=True)
def test_a_stream_error_echoing_the_key_is_scrubbed(
    served: tuple[RunningSidecar, Simulator], request: pytest.FixtureRequest
) -> None:
    api, resp, record = echoing_stream_error(served, request, after_chunks=2)

    assert resp.status == 200
    last = resp.body.strip().split(b"\n\n")[-1]
    assert b"provider stream failed" in last
    assert REDACTED.encode() in last
    assert record["outcome"] == "stream_error"
    assert_scrubbed(api, resp.body, record)


def api_of(request: pytest.FixtureRequest) -> str:
    """The provider format the ``served`` fixture was given for this test."""
    return str(request.node.callspec.params["served"])
