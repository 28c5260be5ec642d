"""Who may call the API (``guard.py``): loopback hosts only, no browser cross-origin requests,
JSON bodies only — refused in the client's API shape, before any provider is contacted."""

from __future__ import annotations

import openai
import pytest

from aiguillage.devtools.simulators.anthropic import AnthropicSimulator
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.main import ServeOptions
from tests.sidecar._wire import anthropic_error, openai_error
from tests.sidecar.conftest import (
    MESSAGES,
    RunningSidecar,
    StartSidecar,
    eu_target,
    route,
    two_provider_config,
)

CHAT = {"model": "chat", "messages": MESSAGES}


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:4000", "127.0.0.1", "localhost:4000", "LOCALHOST", "[::1]:4000", "127.1.2.3:80"],
)
def test_loopback_hosts_are_served(three: RunningSidecar, host: str) -> None:
    resp = three.raw("POST", "/v1/chat/completions", json=CHAT, headers={"Host": host})
    assert resp.status == 200


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:4000", "10.0.0.7:4000", "localhost.evil.io"]
)
def test_foreign_hosts_are_refused(three: RunningSidecar, eu: OpenAISimulator, host: str) -> None:
    # DNS rebinding: a page of attacker.example resolved to 127.0.0.1 sends its own Host.
    resp = three.raw("POST", "/v1/chat/completions", json=CHAT, headers={"Host": host})

    assert resp.status == 403
    error = openai_error(resp.body)
    assert error.code == "forbidden_host"
    assert "--allowed-hosts" in error.message
    assert eu.requests == []
    record = three.audit_for(resp.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("forbidden_host", 403)
    assert record["namespace"] == "team-a"  # who was targeted, for whoever reads the audit


def test_models_list_is_guarded_too(three: RunningSidecar) -> None:
    resp = three.raw("GET", "/v1/models", headers={"Host": "attacker.example"})
    assert resp.status == 403
    assert openai_error(resp.body).code == "forbidden_host"
    assert three.raw("GET", "/v1/models").status == 200


def test_probes_and_metrics_answer_any_host(three: RunningSidecar) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert three.raw("GET", path, headers={"Host": "10.0.0.7:4000"}).status == 200


def test_allowed_hosts_are_served(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    sc = start_sidecar(
        two_provider_config(eu, us, route("chat", eu_target())),
        serving=ServeOptions(allowed_hosts=frozenset({"aiguillage.team-a.svc", "10.0.0.7"})),
    )
    for host in ("aiguillage.team-a.svc:4000", "10.0.0.7:4000", "127.0.0.1"):
        assert (
            sc.raw("POST", "/v1/chat/completions", json=CHAT, headers={"Host": host}).status == 200
        )
    assert (
        sc.raw("POST", "/v1/chat/completions", json=CHAT, headers={"Host": "x.svc"}).status == 403
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.io:4000"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_origin_browser_requests_are_refused(
    three: RunningSidecar, eu: OpenAISimulator, headers: dict[str, str]
) -> None:
    resp = three.raw("POST", "/v1/chat/completions", json=CHAT, headers=headers)

    assert resp.status == 403
    assert openai_error(resp.body).code == "forbidden_origin"
    assert eu.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:4000", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_loopback_pages_are_served(three: RunningSidecar, headers: dict[str, str]) -> None:
    assert three.raw("POST", "/v1/chat/completions", json=CHAT, headers=headers).status == 200


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_posts_must_be_json(three: RunningSidecar, eu: OpenAISimulator, content_type: str) -> None:
    # What a web page can send cross-origin without a preflight ("simple" requests).
    resp = three.raw(
        "POST", "/v1/chat/completions", json=CHAT, headers={"content-type": content_type}
    )

    assert resp.status == 415
    error = openai_error(resp.body)
    assert (error.type, error.code) == ("invalid_request_error", "unsupported_media_type")
    assert content_type in error.message
    assert eu.requests == []


def test_json_with_a_charset_is_served(three: RunningSidecar) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert three.raw("POST", "/v1/chat/completions", json=CHAT, headers=headers).status == 200


def test_refusals_on_messages_have_the_anthropic_shape(
    three: RunningSidecar, claude: AnthropicSimulator
) -> None:
    body = {"model": "claude", "max_tokens": 8, "messages": MESSAGES}
    resp = three.raw("POST", "/v1/messages", json=body, headers={"Host": "attacker.example"})
    assert resp.status == 403
    assert anthropic_error(resp.body).error.type == "permission_error"

    resp = three.raw("POST", "/v1/messages", json=body, headers={"content-type": "text/plain"})
    assert resp.status == 415
    assert anthropic_error(resp.body).error.message.startswith("Content-Type must be")
    assert claude.requests == []


def test_the_sdks_pass_the_guard(three: RunningSidecar) -> None:
    # The openai SDK sends Host 127.0.0.1:<port> and content-type application/json.
    completion = three.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as caught:
        three.client(
            default_headers={"Origin": "https://attacker.example"}
        ).chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.code == "forbidden_origin"
